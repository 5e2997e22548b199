"""Raw records -> Rows, with every problem reported by row number and field.

A dataset import is all or nothing: every row is validated first, problems are collected (up to a
cap), and one DataError lists the first few with the total. Nothing reaches the store until the
whole file is clean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

from pydantic import ValidationError

from sluice.dataset.row import Row
from sluice.errors import DataError, Location

SHOWN_PROBLEMS = 5


@dataclass(frozen=True)
class RowProblem:
    row: int  # 1-based record number in the file (JSONL: its line)
    field: str | None
    message: str

    def __str__(self) -> str:
        return str(Location(row=self.row, field=self.field)) + f": {self.message}"


class RowErrors(DataError):
    """Bad rows in a dataset file; ``problems`` holds every one found (up to the cap)."""

    def __init__(self, file: str, problems: list[RowProblem], capped: bool = False):
        first, rest = problems[0], problems[1 : SHOWN_PROBLEMS]
        total = f"{len(problems)}{'+' if capped else ''}"
        message = first.message
        if len(problems) > 1:
            message += "; also " + "; ".join(str(p) for p in rest)
            message += f" ({total} problems in total, nothing imported)"
        super().__init__(message, Location(file=file, row=first.row, field=first.field))
        self.problems = problems


class ProblemLog:
    """Collects problems up to ``limit`` so a hopeless file does not produce a million lines."""

    def __init__(self, file: str, limit: int = 100):
        self.file, self.limit = file, limit
        self.problems: list[RowProblem] = []
        self.capped = False

    def add(self, row: int, field: str | None, message: str) -> None:
        if len(self.problems) >= self.limit:
            self.capped = True
            return
        self.problems.append(RowProblem(row, field, message))

    @property
    def full(self) -> bool:
        return self.capped

    def raise_if_any(self) -> None:
        if self.problems:
            raise RowErrors(self.file, self.problems, self.capped)


@dataclass(frozen=True)
class Rejected:
    """A record the reader already reported; its id (if readable) still counts for duplicates."""

    id: Any = None


Record = dict[str, Any] | Rejected


def validate_rows(records: Iterable[tuple[int, Record]], log: ProblemLog) -> list[Row]:
    """Validate (row number, raw dict) pairs; ``Rejected`` records were reported by the reader."""
    rows: list[Row] = []
    first_seen: dict[str, int] = {}
    for number, raw in records:
        if log.full:
            break
        raw_id = raw.id if isinstance(raw, Rejected) else raw.get("id")
        if isinstance(raw_id, (str, int)) and not isinstance(raw_id, bool):
            if str(raw_id) in first_seen:
                log.add(number, "id", f"duplicate id '{raw_id}' (first at row {first_seen[str(raw_id)]})")
            else:
                first_seen[str(raw_id)] = number
        if isinstance(raw, Rejected):
            continue
        try:
            rows.append(Row.model_validate(raw))
        except ValidationError as e:
            for field, message in explain(e, raw):
                log.add(number, field, message)
    log.raise_if_any()
    if not rows:
        raise DataError("the file holds no rows", Location(file=log.file))
    return rows


def explain(error: ValidationError, raw: Any) -> list[tuple[str | None, str]]:
    """(field path, message) per problem, keeping only the union branch that matches the data.

    Pydantic reports ``input`` (messages *or* variables) under both branches; for a list the
    dict-branch complaint is noise, and vice versa.
    """
    kept: dict[str, list[str]] = {}
    dropped: dict[str, list[str]] = {}
    for err in error.errors():
        path, matches = _real_path(err["loc"], raw)
        field = _dotted(path)
        bucket = kept if matches else dropped
        bucket.setdefault(field, []).append(_message(err))
    out = [(f or None, m) for f, msgs in kept.items() for m in msgs]
    for field, msgs in dropped.items():
        if not any(k == field or k.startswith((field + ".", field + "[")) for k in kept):
            joined = msgs[0] + "".join(" or " + m.removeprefix("Input should be ") for m in msgs[1:])
            out.append((field or None, joined))
    return out


def _real_path(loc: tuple, raw: Any) -> tuple[tuple, bool]:
    """Strip pydantic's branch labels from ``loc``; False when a label's type does not fit the data."""
    path: list[Any] = []
    value, matches = raw, True
    for part in loc:
        if isinstance(part, int) and isinstance(value, list) and part < len(value):
            path.append(part)
            value = value[part]
        elif isinstance(part, str) and isinstance(value, dict) and part in value:
            path.append(part)
            value = value[part]
        elif isinstance(part, str) and part.startswith(("list[", "dict[")):
            expected = list if part.startswith("list[") else dict
            matches = matches and isinstance(value, expected)
        elif isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue  # other validator/branch labels are not keys of the data
        else:
            path.append(part)  # a missing key or an index past the end: still the field at fault
            value = None
    return tuple(path), matches


def _dotted(path: tuple) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _message(err: dict[str, Any]) -> str:
    if err["type"] == "extra_forbidden":
        return "unknown field"
    return str(err["msg"]).removeprefix("Value error, ")


def normalise_row(row: Row) -> dict[str, Any]:
    """The canonical stored form of a row: what the dataset version hashes and the store keeps.

    Unset (null) fields are left out; defaults (empty context, cohort ``default``) are written.
    """
    return row.model_dump(mode="json", exclude_none=True)
