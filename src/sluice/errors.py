"""Errors a user can act on.

Every error that reaches the CLI is a ``SluiceError``: one line that names the file, line, row or
field at fault, and the exit code the contract in docs/cli.md assigns to its kind. Anything else
escaping to the CLI is a bug in Sluice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    PASS = 0
    FAIL = 1
    INCONCLUSIVE = 2
    USAGE = 3  # usage or configuration error
    DATA = 4  # dataset or stored-data error
    UPSTREAM = 5  # target or upstream errors beyond the policy's error budget


@dataclass
class Location:
    """Where a problem is: any of file, line, row, field."""

    file: str | None = None
    line: int | None = None
    row: int | str | None = None
    field: str | None = None

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file + (f":{self.line}" if self.line else ""))
        elif self.line:
            parts.append(f"line {self.line}")
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.field:
            parts.append(f"field '{self.field}'")
        return ", ".join(parts)


class SluiceError(Exception):
    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, location: Location | None = None):
        super().__init__(message)
        self.message = message
        self.location = location or Location()

    def __str__(self) -> str:
        where = str(self.location)
        return f"{where}: {self.message}" if where else self.message


class ConfigError(SluiceError):
    """Bad configuration, release, policy file or command-line usage."""

    exit_code = ExitCode.USAGE


class NotFoundError(ConfigError):
    """A referenced release, dataset, run or gate does not exist."""


class DataError(SluiceError):
    """Bad dataset rows, incompatible runs, or stored data that does not fit."""

    exit_code = ExitCode.DATA


class UpstreamError(SluiceError):
    """A target or provider failed in a way retries could not fix."""

    exit_code = ExitCode.UPSTREAM

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = False,
                 retry_after: float | None = None, location: Location | None = None):
        super().__init__(message, location)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
