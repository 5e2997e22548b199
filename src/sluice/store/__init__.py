"""Open a store by URL: ``duckdb:///path/file.duckdb`` (embedded default) or ``postgresql://…``."""

from __future__ import annotations

from pathlib import Path

from sluice.errors import ConfigError
from sluice.store.base import Store
from sluice.store.database import DuckDatabase, PgDatabase
from sluice.store.dialect import DUCKDB, POSTGRES
from sluice.store.records import DatasetRecord, GateRecord, ReleaseRecord, RunRecord
from sluice.store.sql import SqlStore

DEFAULT_URL = "duckdb:///.sluice/sluice.duckdb"

__all__ = ["DEFAULT_URL", "DatasetRecord", "GateRecord", "ReleaseRecord", "RunRecord", "SqlStore", "Store", "StoreInUse",
           "open_store"]


def _register_migrations() -> None:
    """Import the modules that add tables, so one migration run creates the whole schema."""
    import sluice.gate.reports_store  # noqa: F401  (full gate reports, for the dashboard)
    import sluice.gateway.schema  # noqa: F401  (gateway deployments)
    import sluice.web.trace_dims  # noqa: F401  (the dashboard's trace dimensions)
    import sluice.telemetry.schema  # noqa: F401  (spans, feedback, span evals, API keys)
    import sluice.audit.schema  # noqa: F401  (audit log)
    import sluice.rollout.store  # noqa: F401  (rollouts, their event log, webhook outbox, controller lease)
    import sluice.monitor.alerts  # noqa: F401  (alerts)
    import sluice.monitor.stored  # noqa: F401  (monitors added at run time)


def open_store(url: str = DEFAULT_URL, *, migrate: bool = True) -> SqlStore:
    """Connect and bring the schema up to date."""
    _register_migrations()
    if url.startswith("duckdb://"):
        store = SqlStore(DuckDatabase(_connect_duckdb(url), DUCKDB), url)
    elif url.startswith(("postgresql://", "postgres://")):
        store = SqlStore(PgDatabase(_connect_postgres(url), POSTGRES), url)
    else:
        raise ConfigError(f"unsupported store URL '{url}': use duckdb:///path/file.duckdb or postgresql://…")
    if migrate:
        if url.startswith("postgres"):
            _migrate_locked(store)
        else:
            store.migrate()
    return store


class StoreInUse(ConfigError):
    """Another process (usually ``sluice serve``) holds the DuckDB file."""

    def __init__(self, path: str):
        super().__init__(f"store {path} is in use by another process (DuckDB allows one writer); "
                         "stop it or use PostgreSQL")
        self.path = path


def _connect_duckdb(url: str):
    import duckdb

    path = url.removeprefix("duckdb://")
    if path.startswith("/"):
        path = path[1:] if not path.startswith("//") else path[1:]
    # duckdb:///rel/path -> "rel/path"; duckdb:////abs/path -> "/abs/path"; duckdb:///:memory:
    if path in ("", ":memory:"):
        return duckdb.connect(":memory:")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:
        return duckdb.connect(path)
    except duckdb.IOException as e:
        msg = str(e).splitlines()[0]
        if "lock" in msg.lower():
            raise StoreInUse(path) from None
        raise ConfigError(f"cannot open store {path}: {msg}") from None


def _connect_postgres(url: str):
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot connect to PostgreSQL at {_redact(url)}: {first}") from None


def _migrate_locked(store: SqlStore) -> None:
    """Serialise migrations across processes sharing one PostgreSQL database."""
    store.db.execute("SELECT pg_advisory_lock(?)", [0x51_1CE])
    try:
        store.migrate()
    finally:
        store.db.execute("SELECT pg_advisory_unlock(?)", [0x51_1CE])


def _redact(url: str) -> str:
    """Hide a password in a URL before it reaches a message or log."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}" if ":" in creds else url
    return url
