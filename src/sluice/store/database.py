"""A thin, thread-safe connection wrapper shared by the DuckDB and PostgreSQL backends.

One connection per store guarded by a re-entrant lock: DuckDB has a single writer per file and
its connections are not thread-safe; for PostgreSQL one connection per process is plenty for the
CLI, and the serving paths batch their writes.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from sluice.store.dialect import Dialect


class Database:
    def __init__(self, conn: Any, dialect: Dialect):
        self.conn = conn
        self.dialect = dialect
        self.lock = threading.RLock()
        self._depth = 0

    @contextmanager
    def transaction(self) -> Iterator["Database"]:
        """All statements inside commit together or not at all. Nested calls join the outer one."""
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield self
                finally:
                    self._depth -= 1
                return
            self._begin()
            self._depth = 1
            try:
                yield self
            except BaseException:
                self._depth = 0
                self._rollback()
                raise
            self._depth = 0
            self._commit()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self.lock:
            self._cursor_execute(self.dialect.q(sql), params)
            self._autocommit()

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        with self.lock:
            self._executemany(self.dialect.q(sql), rows)
            self._autocommit()

    def insert_rows(self, table_and_cols: str, rows: Sequence[Sequence[Any]], chunk: int = 200) -> None:
        """Insert many rows with multi-row VALUES statements: on DuckDB this is ~15x faster than
        ``executemany``, which runs one statement per row."""
        if not rows:
            return
        width = len(rows[0])
        one = "(" + ", ".join("?" for _ in range(width)) + ")"
        with self.transaction():
            for start in range(0, len(rows), chunk):
                part = rows[start : start + chunk]
                sql = f"INSERT INTO {table_and_cols} VALUES " + ", ".join(one for _ in part)
                self._cursor_execute(self.dialect.q(sql), [v for r in part for v in r])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self.lock:
            return self._fetchall(self.dialect.q(sql), params)

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    # backend specifics ----------------------------------------------------------------------
    def _autocommit(self) -> None:
        if not self._depth:
            self._commit_plain()

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _commit_plain(self) -> None:
        """Commit a statement issued outside a transaction (no-op where the driver autocommits)."""

    def _cursor_execute(self, sql: str, params: Sequence[Any]) -> None:
        raise NotImplementedError

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _fetchall(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        raise NotImplementedError


class DuckDatabase(Database):
    def _begin(self) -> None:
        self.conn.execute("BEGIN TRANSACTION")

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def _cursor_execute(self, sql: str, params: Sequence[Any]) -> None:
        self.conn.execute(sql, list(params))

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self.conn.executemany(sql, [list(r) for r in rows])

    def _fetchall(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        return self.conn.execute(sql, list(params)).fetchall()


class PgDatabase(Database):
    """psycopg connection in autocommit mode; ``transaction()`` opens an explicit one."""

    def _begin(self) -> None:
        self.conn.execute("BEGIN")

    def _commit(self) -> None:
        self.conn.execute("COMMIT")

    def _rollback(self) -> None:
        self.conn.execute("ROLLBACK")

    def _cursor_execute(self, sql: str, params: Sequence[Any]) -> None:
        self.conn.execute(sql, tuple(params), prepare=False)

    def _executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self.conn.cursor() as cur:
            cur.executemany(sql, [tuple(r) for r in rows])

    def _fetchall(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        with self.conn.cursor() as cur:
            cur.execute(sql, tuple(params))
            return cur.fetchall() if cur.description else []
