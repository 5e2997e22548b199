"""The few differences between DuckDB and PostgreSQL SQL, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str
    json: str
    float: str
    bigint: str
    blob: str
    paramstyle: str  # "qmark" or "format"

    def render(self, sql: str) -> str:
        """Fill the type placeholders of a migration."""
        return sql.format(json=self.json, float=self.float, bigint=self.bigint, blob=self.blob)

    def q(self, sql: str) -> str:
        """Queries are written with ``?`` placeholders; psycopg wants ``%s``."""
        if self.paramstyle == "qmark":
            return sql
        return sql.replace("%", "%%").replace("?", "%s")


DUCKDB = Dialect("duckdb", json="TEXT", float="DOUBLE", bigint="BIGINT", blob="BLOB", paramstyle="qmark")
POSTGRES = Dialect("postgres", json="TEXT", float="DOUBLE PRECISION", bigint="BIGINT", blob="BYTEA", paramstyle="format")
