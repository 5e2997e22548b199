"""The gateway's table: deployments as stored, shared by every replica (see ``deployment_store``).

Importing this module registers the migration; ``sluice.store.open_store`` imports it before
migrating. ``IF NOT EXISTS``: stores made before this migration existed created the same table
and sequence at gateway start-up.
"""

from __future__ import annotations

from sluice.store.migrations import migration

migration(
    "0200_gateway_deployments",
    """
    CREATE SEQUENCE IF NOT EXISTS gateway_deployment_version;
    CREATE TABLE IF NOT EXISTS gateway_deployments (
        name TEXT PRIMARY KEY,
        config TEXT NOT NULL,
        seed TEXT,
        version {bigint} NOT NULL,
        updated_at {float} NOT NULL
    );
    """,
)
