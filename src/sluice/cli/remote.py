"""The CLI against a running ``sluice serve`` when the embedded store is held by it.

DuckDB admits one process per file. ``sluice serve`` writes its URL to ``<store file>.server``
while it runs; a command that finds the store locked and that file present talks to the
server's HTTP API instead (``Authorization: Bearer $SLUICE_API_KEY``, an admin key, once keys
exist). The commands that can: ``release list|show``, ``dataset list``, ``keys create|list|revoke``,
``metrics``, ``audit``, ``rollout``. Others say the store is in use, by which server, and what to do. PostgreSQL stores
need none of this: every process opens them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from sluice.errors import ConfigError, NotFoundError, SluiceError

KEY_ENV = "SLUICE_API_KEY"
REMOTE_COMMANDS = "release list|show, dataset list, keys, metrics, audit, rollout"


def server_file(store_path: str) -> Path:
    return Path(store_path + ".server")


def duckdb_path(store_url: str) -> str | None:
    """The file behind a ``duckdb://`` URL (as ``open_store`` reads it), None for other stores."""
    if not store_url.startswith("duckdb://"):
        return None
    path = store_url.removeprefix("duckdb://")
    if path.startswith("/"):
        path = path[1:]
    return None if path in ("", ":memory:") else path


def announce(store_url: str, url: str) -> Path | None:
    """Write ``<store>.server`` (``sluice serve``); the caller removes it when it stops."""
    path = duckdb_path(store_url)
    if path is None:
        return None
    f = server_file(path)
    f.write_text(url + "\n")
    return f


class Remote:
    """A few JSON calls to the server; errors become the CLI's one-line errors. ``store_path``: the
    store it holds (named when it does not answer); ``status_errors``: the error class for a status
    a command gives its own exit code (``sluice rollout``: 412, no passing gate, exits 1)."""

    def __init__(self, base_url: str, store_path: str | None = None,
                 status_errors: dict[int, type[SluiceError]] | None = None):
        self.base_url = base_url.rstrip("/")
        self.store_path = store_path
        self.status_errors = status_errors or {}
        key = os.environ.get(KEY_ENV)
        self.headers = {"authorization": f"Bearer {key}"} if key else {}

    def call(self, method: str, path: str, *, params: dict | None = None, json: Any = None,
             answer_404: bool = False) -> Any:
        try:
            r = httpx.request(method, self.base_url + path, params={k: v for k, v in (params or {}).items()
                                                                     if v is not None},
                              json=json, headers=self.headers, timeout=60)
        except httpx.HTTPError as e:
            if self.store_path is None:
                raise ConfigError(f"cannot reach the server at {self.base_url}: {type(e).__name__}: {e}") from None
            raise ConfigError(f"store {self.store_path} is in use and the server it names ({self.base_url}, "
                              f"from {server_file(self.store_path)}) does not answer: {type(e).__name__}; "
                              "stop the process holding the store, or remove that file if it is stale") from None
        try:
            body = r.json()
        except ValueError:
            body = {"error": r.text[:200]}
        if r.status_code < 400 or (r.status_code == 404 and answer_404):
            return body
        message = _message(body)
        if r.status_code in (401, 403):
            raise ConfigError(f"the server at {self.base_url} refused: {message}; set {KEY_ENV} to an admin key")
        if r.status_code in self.status_errors:
            raise self.status_errors[r.status_code](message)
        if r.status_code == 404:
            raise NotFoundError(message)
        raise SluiceError(f"the server at {self.base_url} answered {r.status_code}: {message}")


def _message(body: Any) -> str:
    """The error text of an answer: ``{"error": "..."}`` or OpenAI's ``{"error": {"message": ...}}``."""
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        err = err.get("message")
    return str(err or body)


def remote_for(store_url: str) -> Remote | None:
    """The running server holding this store, if it announced itself."""
    path = duckdb_path(store_url)
    if path is None:
        return None
    f = server_file(path)
    try:
        url = f.read_text().strip()
    except OSError:
        return None
    return Remote(url, path) if url.startswith("http") else None


def in_use_message(path: str, remote: Remote | None) -> str:
    who = f"sluice serve at {remote.base_url}" if remote else "another process"
    through = (f"; through the server work: {REMOTE_COMMANDS} (with {KEY_ENV} set to an admin key once keys "
               "exist)") if remote else ""
    return f"store {path} is in use by {who} (DuckDB allows one process); stop it or use PostgreSQL{through}"
