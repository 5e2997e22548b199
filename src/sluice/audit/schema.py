"""The audit log's table: one row per change to what users get, chained by hashes.

``seq`` orders the entries and makes a fork impossible (two writers cannot both append entry
n+1); ``hash`` covers the previous entry's hash and every field of its own row, so an edited,
removed or reordered entry breaks the chain (``sluice audit verify``). On PostgreSQL row
triggers refuse UPDATE and DELETE outright; on DuckDB no Sluice code path issues either, and the
chain is what shows tampering.

Importing this module registers the migration; ``sluice.store.open_store`` imports it first.
"""

from __future__ import annotations

from sluice.store.migrations import migration

_REFUSE = """
CREATE OR REPLACE FUNCTION sluice_audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION USING MESSAGE = 'audit_log is append-only: ' || TG_OP || ' refused',
                          ERRCODE = 'insufficient_privilege';
END
$fn$
"""

migration(
    "1200_audit_log",
    """
    CREATE TABLE audit_log (
        seq {bigint} PRIMARY KEY,
        created_at {float} NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        deployment TEXT,
        before_state {json},
        after_state {json},
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    """,
    postgres=(
        _REFUSE,
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION sluice_audit_log_append_only()",
        "CREATE INDEX audit_log_deployment ON audit_log (deployment, seq)",
    ),
)
