"""Issue 10 item 9: two replicas starting together on a fresh PostgreSQL database. The span
indexes used to be created at app start, outside the migration lock, and one replica died of a
raw UniqueViolation; now they are migration ``1000_postgres_indexes``, under the lock."""

from __future__ import annotations

import threading
import uuid

import pytest

from sluice.server.app import create_app
from sluice.store import open_store

pytestmark = pytest.mark.postgres


@pytest.fixture
def fresh_pg_url(pg_database_url):
    import psycopg

    base = pg_database_url.rsplit("/", 1)[0]
    name = f"sluice_fresh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_database_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield f"{base}/{name}"
    with psycopg.connect(pg_database_url, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_indexes_are_a_migration(fresh_pg_url):
    store = open_store(fresh_pg_url)
    try:
        assert "1000_postgres_indexes" in store.applied_migrations()
        names = {r[0] for r in store.db.query("SELECT indexname FROM pg_indexes WHERE tablename = 'spans'")}
        assert {"spans_deployment_start", "spans_trace"} <= names
    finally:
        store.close()


def test_replicas_starting_together_on_a_fresh_database(fresh_pg_url):
    errors: list[BaseException] = []
    barrier = threading.Barrier(4, timeout=30)

    def replica() -> None:
        try:
            barrier.wait()
            store = open_store(fresh_pg_url)
            try:
                create_app(store)
            finally:
                store.close()
        except BaseException as e:  # noqa: BLE001 - collected for the assertion
            errors.append(e)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []


def test_duckdb_records_the_postgres_only_migration_without_running_it(duckdb_store):
    assert "1000_postgres_indexes" in duckdb_store.applied_migrations()
