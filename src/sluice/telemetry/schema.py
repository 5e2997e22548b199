"""Tables for traces, feedback, online evaluation results and API keys.

One wide span table with typed columns for everything the metrics and the rollout analysis
filter or aggregate on; every other attribute stays in ``attributes`` (JSON text). No primary
key or secondary index on the embedded store: DuckDB's zone maps on the time-ordered
``start_ns`` serve the metrics scans, and an ART index would cost most of the ingest rate.
PostgreSQL gets the B-tree indexes its planner needs (``postgres_indexes``, applied there only).

Importing this module registers the migrations; ``sluice.store.open_store`` must import it
before migrating.
"""

from __future__ import annotations

from sluice.store.migrations import migration

SPAN_COLUMNS: tuple[str, ...] = (
    "trace_id", "span_id", "parent_id", "name", "kind", "start_ns", "duration_ms", "status",
    "error_type", "model", "provider", "input_tokens", "output_tokens", "total_tokens", "cost",
    "deployment", "release", "route", "cohort", "fallback_used", "cache_hit", "agent_step",
    "tool_name", "session_id", "user_id", "ttft_ms", "is_request", "service", "attributes",
    "ingested_at",
)

migration(
    "0100_telemetry",
    """
    CREATE TABLE spans (
        trace_id TEXT NOT NULL,
        span_id TEXT NOT NULL,
        parent_id TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        start_ns {bigint} NOT NULL,
        duration_ms {float} NOT NULL,
        status TEXT NOT NULL,
        error_type TEXT,
        model TEXT,
        provider TEXT,
        input_tokens {bigint},
        output_tokens {bigint},
        total_tokens {bigint},
        cost {float},
        deployment TEXT NOT NULL,
        release TEXT NOT NULL,
        route TEXT NOT NULL,
        cohort TEXT NOT NULL,
        fallback_used BOOLEAN NOT NULL,
        cache_hit BOOLEAN NOT NULL,
        agent_step TEXT,
        tool_name TEXT,
        session_id TEXT,
        user_id TEXT,
        ttft_ms {float},
        is_request BOOLEAN NOT NULL,
        service TEXT,
        attributes {json} NOT NULL,
        ingested_at {float} NOT NULL
    );

    CREATE TABLE feedback (
        id TEXT PRIMARY KEY,
        trace_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        value {json},
        comment TEXT,
        created_at {float} NOT NULL
    );

    CREATE TABLE span_evals (
        trace_id TEXT NOT NULL,
        span_id TEXT,
        evaluator TEXT NOT NULL,
        passed BOOLEAN,
        score {float},
        label TEXT,
        source TEXT NOT NULL,
        created_at {float} NOT NULL
    );

    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        scope TEXT NOT NULL,
        secret_hash TEXT NOT NULL,
        created_at {float} NOT NULL,
        revoked_at {float}
    );
    """,
)

# PostgreSQL only: DuckDB scans columns with zone maps, PostgreSQL needs B-trees for the same plans.
POSTGRES_INDEXES = (
    "CREATE INDEX IF NOT EXISTS spans_deployment_start ON spans (deployment, start_ns)",
    "CREATE INDEX IF NOT EXISTS spans_trace ON spans (trace_id)",
    "CREATE INDEX IF NOT EXISTS feedback_trace ON feedback (trace_id)",
    "CREATE INDEX IF NOT EXISTS span_evals_trace ON span_evals (trace_id)",
)

# A migration, so it runs under the migration lock: created at app start, two replicas starting
# together on a fresh database raced and one died of a raw UniqueViolation. IF NOT EXISTS keeps it
# harmless on databases where an earlier version already created them.
migration("1000_postgres_indexes", ";\n".join(POSTGRES_INDEXES) + ";", dialects=("postgres",))


def ensure_indexes(store) -> None:
    """Kept for callers of older versions: the indexes are the ``1000_postgres_indexes`` migration."""
    return None


# Inheritance of deployment/release/cohort within a trace (telemetry/attribution.py): per span,
# which fields it is still waiting for (bits 1, 2, 4); per trace, its attribution so far.
migration(
    "1100_trace_attribution",
    """
    ALTER TABLE spans ADD COLUMN unattributed INTEGER DEFAULT 0;

    CREATE TABLE trace_attribution (
        trace_id TEXT PRIMARY KEY,
        deployment TEXT NOT NULL,
        release TEXT NOT NULL,
        cohort TEXT NOT NULL,
        from_root BOOLEAN NOT NULL,
        pending_since {bigint},
        updated_at {float} NOT NULL
    );
    """,
)
