"""Schema migrations: a named, ordered list; applied names are recorded in ``sluice_migrations``.

Each migration is plain SQL written once for both backends. The few spots where DuckDB and
PostgreSQL differ use placeholders that ``Dialect.render`` fills in ({json}, {float}, {bigint}).
Other packages (telemetry, gateway, rollout) add their tables by appending to ``MIGRATIONS`` at
import time through ``migration(name, sql)``; ``sluice.store.open_store`` imports them first.
``postgres`` statements run after ``sql`` on PostgreSQL only, each whole and unrendered (trigger
functions, whose bodies hold semicolons and braces).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Migration:
    name: str
    sql: str
    postgres: tuple[str, ...] = ()  # statements only PostgreSQL runs, after ``sql`` (triggers, functions)
    dialects: tuple[str, ...] | None = None  # only these backends run ``sql`` (the others just record it)


MIGRATIONS: list[Migration] = []


def migration(name: str, sql: str, dialects: tuple[str, ...] | None = None, *,
              postgres: tuple[str, ...] = ()) -> Migration:
    if any(m.name == name for m in MIGRATIONS):
        raise ValueError(f"duplicate migration name {name}")
    m = Migration(name, sql, tuple(postgres), dialects)
    MIGRATIONS.append(m)
    return m


migration(
    "0001_core",
    """
    CREATE TABLE releases (
        digest TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        manifest {json} NOT NULL,
        files {json} NOT NULL,
        source TEXT,
        created_at {float} NOT NULL
    );
    CREATE INDEX releases_name ON releases (name, created_at);

    CREATE TABLE datasets (
        name TEXT NOT NULL,
        version TEXT NOT NULL,
        row_count INTEGER NOT NULL,
        cohorts {json} NOT NULL,
        description TEXT NOT NULL,
        source TEXT,
        created_at {float} NOT NULL,
        PRIMARY KEY (name, version)
    );

    CREATE TABLE dataset_rows (
        version TEXT NOT NULL,
        idx INTEGER NOT NULL,
        row_id TEXT NOT NULL,
        cohort TEXT NOT NULL,
        body {json} NOT NULL,
        PRIMARY KEY (version, idx)
    );

    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        release_digest TEXT NOT NULL,
        dataset_name TEXT NOT NULL,
        dataset_version TEXT NOT NULL,
        evaluators_digest TEXT NOT NULL,
        evaluators {json} NOT NULL,
        status TEXT NOT NULL,
        summary {json} NOT NULL,
        created_at {float} NOT NULL,
        finished_at {float}
    );
    CREATE INDEX runs_lookup ON runs (release_digest, dataset_version, evaluators_digest);

    CREATE TABLE run_rows (
        run_id TEXT NOT NULL,
        row_id TEXT NOT NULL,
        cohort TEXT NOT NULL,
        record {json} NOT NULL,
        PRIMARY KEY (run_id, row_id)
    );

    CREATE TABLE response_cache (
        key TEXT PRIMARY KEY,
        body {json} NOT NULL,
        created_at {float} NOT NULL
    );

    CREATE TABLE gates (
        id TEXT PRIMARY KEY,
        candidate_digest TEXT NOT NULL,
        baseline_digest TEXT NOT NULL,
        dataset_name TEXT NOT NULL,
        dataset_version TEXT NOT NULL,
        policy_digest TEXT NOT NULL,
        verdict TEXT NOT NULL,
        exit_code INTEGER NOT NULL,
        candidate_run TEXT,
        baseline_run TEXT,
        summary {json} NOT NULL,
        created_at {float} NOT NULL
    );
    """,
)

migration(
    "0002_blobs",
    """
    CREATE TABLE blobs (
        digest TEXT PRIMARY KEY,
        body BLOB_TYPE NOT NULL
    );
    """.replace("BLOB_TYPE", "{blob}"),
)
