"""State shared by the commands of one CLI invocation: settings, the store, consoles."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from rich.console import Console

from sluice.cli.remote import Remote, in_use_message, remote_for
from sluice.config import Settings, load_settings
from sluice.errors import ConfigError
from sluice.store import SqlStore, StoreInUse, open_store


@dataclass
class _State:
    config_path: str | None = None
    store_url: str | None = None
    settings: Settings | None = None
    store: SqlStore | None = None
    remote: Remote | None = None


_state = _State()
# Off a terminal (CI logs, pipes) rich would wrap at 80 columns and squash the gate tables.
_out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 150)
_err = Console(stderr=True, highlight=False, soft_wrap=True, width=None if sys.stderr.isatty() else 150)


def configure(config_path: str | None, store_url: str | None) -> None:
    _state.config_path = config_path
    _state.store_url = store_url
    _state.settings = None


def settings() -> Settings:
    if _state.settings is None:
        _state.settings = load_settings(_state.config_path)
        if _state.store_url:
            _state.settings.store = _state.store_url
    return _state.settings


def store() -> SqlStore:
    if _state.store is None:
        try:
            _state.store = open_store(settings().store)
        except StoreInUse as e:
            raise ConfigError(in_use_message(e.path, remote_for(settings().store))) from None
    return _state.store


def remote() -> Remote | None:
    """The ``sluice serve`` to go through when it holds the embedded store (cli/remote.py);
    None: use ``store()``. Opens the store on the way when it is free."""
    if _state.store is None and _state.remote is None:
        try:
            _state.store = open_store(settings().store)
        except StoreInUse as e:
            _state.remote = remote_for(settings().store)
            if _state.remote is None:
                raise ConfigError(in_use_message(e.path, None)) from None
    return _state.remote


def console() -> Console:
    return _out


def console_err() -> Console:
    return _err


def close() -> None:
    if _state.store is not None:
        _state.store.close()
        _state.store = None
    _state.remote = None
