"""Shared fixtures: a fresh store per test on each backend.

PostgreSQL tests create one database per test session and drop it afterwards. Without a
reachable server they are skipped and the summary says so; with CI=true a missing server fails.
"""

from __future__ import annotations

import os
import uuid

import pytest

from sluice.store import open_store

# No event-loop-lag shedding in servers the tests start (subprocesses inherit it): a loaded machine
# lags every process, and a test's requests must not get 503s for that. Tests of the shedding set
# ``shed_lag_ms`` themselves.
os.environ.setdefault("SLUICE_SHED_LAG_MS", "0")

PG_URL = os.environ.get("SLUICE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
_pg_skip_reason: list[str] = []


def _admin_connect():
    import psycopg

    return psycopg.connect(PG_URL, autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def pg_database_url():
    """A throw-away PostgreSQL database for this test session."""
    try:
        admin = _admin_connect()
    except Exception as e:  # noqa: BLE001 - any connection failure means "no server"
        reason = f"PostgreSQL not reachable at {PG_URL}: {str(e).strip().splitlines()[0] if str(e).strip() else e}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason + " (CI=true: PostgreSQL tests must run)")
        _pg_skip_reason.append(reason)
        pytest.skip(reason)
    name = f"sluice_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.close()


@pytest.fixture
def duckdb_store(tmp_path):
    store = open_store(f"duckdb:///{tmp_path}/sluice.duckdb")
    yield store
    store.close()


@pytest.fixture
def pg_store(pg_database_url):
    store = open_store(pg_database_url)
    _truncate(store)
    yield store
    store.close()


def _truncate(store) -> None:
    tables = [r[0] for r in store.db.query(
        "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'sluice_migrations'"
    )]
    if tables:
        store.db.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables))


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request):
    """The same test body against every backend."""
    return request.getfixturevalue("duckdb_store" if request.param == "duckdb" else "pg_store")


def pytest_terminal_summary(terminalreporter):
    if _pg_skip_reason:
        terminalreporter.write_line(
            f"NOTE: PostgreSQL backend tests were SKIPPED ({_pg_skip_reason[0]}); only the embedded DuckDB suite ran.",
            yellow=True,
        )
