"""The Store implementation shared by both backends: same SQL, same behaviour, one code path."""

from __future__ import annotations

import time
from typing import Any, Iterable

import orjson

from sluice.errors import ConfigError
from sluice.store.database import Database
from sluice.store.migrations import MIGRATIONS
from sluice.store.records import DatasetRecord, GateRecord, ReleaseRecord, RunRecord


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def loads(value: Any) -> Any:
    return orjson.loads(value) if value is not None else None


class SqlStore:
    """Releases, datasets, runs, the response cache and gate records over one ``Database``."""

    def __init__(self, db: Database, url: str):
        self.db = db
        self.url = url

    # lifecycle ------------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply pending migrations in order; returns the names applied."""
        db = self.db
        db.execute(
            "CREATE TABLE IF NOT EXISTS sluice_migrations (name TEXT PRIMARY KEY, applied_at "
            + db.dialect.float + " NOT NULL)"
        )
        applied = {r[0] for r in db.query("SELECT name FROM sluice_migrations")}
        done = []
        for m in sorted(MIGRATIONS, key=lambda m: m.name):  # numbered names, whatever the import order
            if m.name in applied:
                continue
            with db.transaction():
                if db.query_one("SELECT 1 FROM sluice_migrations WHERE name = ?", [m.name]):
                    continue  # another process applied it while we waited
                for stmt in (_statements(db.dialect.render(m.sql))
                             if m.dialects is None or db.dialect.name in m.dialects else ()):
                    db.execute(stmt)
                for stmt in m.postgres if db.dialect.name == "postgres" else ():
                    db.execute(stmt)
                db.execute("INSERT INTO sluice_migrations VALUES (?, ?)", [m.name, time.time()])
            done.append(m.name)
        return done

    def applied_migrations(self) -> list[str]:
        return [r[0] for r in self.db.query("SELECT name FROM sluice_migrations ORDER BY name")]

    def close(self) -> None:
        self.db.close()

    # releases -------------------------------------------------------------------------------
    _RELEASE_COLS = "digest, name, version, manifest, files, source, created_at"

    def put_release(self, rec: ReleaseRecord) -> bool:
        with self.db.transaction():
            if self.db.query_one("SELECT 1 FROM releases WHERE digest = ?", [rec.digest]):
                return False
            rec.created_at = rec.created_at or time.time()
            self.db.execute(
                f"INSERT INTO releases ({self._RELEASE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [rec.digest, rec.name, rec.version, dumps(rec.manifest), dumps(rec.files), rec.source, rec.created_at],
            )
            return True

    def get_release(self, digest: str) -> ReleaseRecord | None:
        row = self.db.query_one(f"SELECT {self._RELEASE_COLS} FROM releases WHERE digest = ?", [digest])
        return _release(row) if row else None

    def list_releases(self, name: str | None = None) -> list[ReleaseRecord]:
        sql = f"SELECT {self._RELEASE_COLS} FROM releases"
        params: list[Any] = []
        if name is not None:
            sql += " WHERE name = ?"
            params.append(name)
        return [_release(r) for r in self.db.query(sql + " ORDER BY created_at DESC, digest", params)]

    # blobs (content-addressed file bodies of releases) -----------------------------------------
    def put_blobs(self, blobs: dict[str, bytes]) -> None:
        with self.db.transaction():
            for digest, body in blobs.items():
                if not self.db.query_one("SELECT 1 FROM blobs WHERE digest = ?", [digest]):
                    self.db.execute("INSERT INTO blobs VALUES (?, ?)", [digest, body])

    def get_blobs(self, digests: list[str]) -> dict[str, bytes]:
        if not digests:
            return {}
        marks = ", ".join("?" for _ in digests)
        rows = self.db.query(f"SELECT digest, body FROM blobs WHERE digest IN ({marks})", digests)
        return {d: bytes(b) for d, b in rows}

    # datasets -------------------------------------------------------------------------------
    _DATASET_COLS = "name, version, row_count, cohorts, description, source, created_at"

    def put_dataset(self, rec: DatasetRecord, rows: list[dict[str, Any]]) -> bool:
        with self.db.transaction():
            if self.db.query_one("SELECT 1 FROM datasets WHERE name = ? AND version = ?", [rec.name, rec.version]):
                return False
            rec.created_at = rec.created_at or time.time()
            self.db.execute(
                f"INSERT INTO datasets ({self._DATASET_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [rec.name, rec.version, rec.row_count, dumps(rec.cohorts), rec.description, rec.source, rec.created_at],
            )
            if not self.db.query_one("SELECT 1 FROM dataset_rows WHERE version = ? AND idx = 0", [rec.version]):
                self.db.insert_rows(
                    "dataset_rows (version, idx, row_id, cohort, body)",
                    [
                        (rec.version, i, str(r["id"]), str(r.get("cohort") or "default"), dumps(r))
                        for i, r in enumerate(rows)
                    ],
                )
            return True

    def get_dataset(self, name: str, version: str | None = None) -> DatasetRecord | None:
        sql = f"SELECT {self._DATASET_COLS} FROM datasets WHERE name = ?"
        params: list[Any] = [name]
        if version:
            full = version if version.startswith("sha256:") else "sha256:" + version
            sql += " AND version LIKE ?"
            params.append(full.replace("%", "") + "%")
        rows = self.db.query(sql + " ORDER BY created_at DESC", params)
        if version and len({r[1] for r in rows}) > 1:
            raise ConfigError(f"dataset version '{version}' of '{name}' is ambiguous: {len(rows)} versions match")
        return _dataset(rows[0]) if rows else None

    def list_datasets(self, name: str | None = None) -> list[DatasetRecord]:
        sql = f"SELECT {self._DATASET_COLS} FROM datasets"
        params: list[Any] = []
        if name is not None:
            sql += " WHERE name = ?"
            params.append(name)
        return [_dataset(r) for r in self.db.query(sql + " ORDER BY name, created_at DESC", params)]

    def get_dataset_rows(self, version: str) -> list[dict[str, Any]]:
        rows = self.db.query("SELECT body FROM dataset_rows WHERE version = ? ORDER BY idx", [version])
        return [loads(r[0]) for r in rows]

    # runs -----------------------------------------------------------------------------------
    _RUN_COLS = (
        "id, release_digest, dataset_name, dataset_version, evaluators_digest, evaluators, status, "
        "summary, created_at, finished_at"
    )

    def create_run(self, run: RunRecord) -> None:
        run.created_at = run.created_at or time.time()
        self.db.execute(
            f"INSERT INTO runs ({self._RUN_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [run.id, run.release_digest, run.dataset_name, run.dataset_version, run.evaluators_digest,
             dumps(run.evaluators), run.status, dumps(run.summary), run.created_at, run.finished_at],
        )

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.db.query_one(f"SELECT {self._RUN_COLS} FROM runs WHERE id = ?", [run_id])
        return _run(row) if row else None

    def find_run(self, release_digest: str, dataset_version: str, evaluators_digest: str) -> RunRecord | None:
        row = self.db.query_one(
            f"SELECT {self._RUN_COLS} FROM runs WHERE release_digest = ? AND dataset_version = ? "
            "AND evaluators_digest = ? ORDER BY created_at DESC LIMIT 1",
            [release_digest, dataset_version, evaluators_digest],
        )
        return _run(row) if row else None

    def list_runs(self, limit: int = 50) -> list[RunRecord]:
        rows = self.db.query(f"SELECT {self._RUN_COLS} FROM runs ORDER BY created_at DESC LIMIT ?", [limit])
        return [_run(r) for r in rows]

    def update_run(self, run_id: str, *, status: str, summary: dict[str, Any] | None = None) -> None:
        finished = time.time() if status != "running" else None
        if summary is None:
            self.db.execute("UPDATE runs SET status = ?, finished_at = ? WHERE id = ?", [status, finished, run_id])
        else:
            self.db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                [status, finished, dumps(summary), run_id],
            )

    def put_run_rows(self, run_id: str, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        batch = [(run_id, row_id, cohort, dumps(rec)) for row_id, cohort, rec in rows]
        if not batch:
            return
        with self.db.transaction():
            ids = [b[1] for b in batch]
            marks = ", ".join("?" for _ in ids)
            self.db.execute(f"DELETE FROM run_rows WHERE run_id = ? AND row_id IN ({marks})", [run_id, *ids])
            self.db.insert_rows("run_rows (run_id, row_id, cohort, record)", batch)

    def get_run_rows(self, run_id: str) -> dict[str, dict[str, Any]]:
        rows = self.db.query("SELECT row_id, record FROM run_rows WHERE run_id = ?", [run_id])
        return {r[0]: loads(r[1]) for r in rows}

    # response cache -------------------------------------------------------------------------
    def cache_get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            for k, body in self.db.query(f"SELECT key, body FROM response_cache WHERE key IN ({marks})", chunk):
                out[k] = loads(body)
        return out

    def cache_put(self, items: dict[str, dict[str, Any]]) -> None:
        if not items:
            return
        now = time.time()
        with self.db.transaction():
            keys = list(items)
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ", ".join("?" for _ in chunk)
                self.db.execute(f"DELETE FROM response_cache WHERE key IN ({marks})", chunk)
            self.db.insert_rows("response_cache (key, body, created_at)", [(k, dumps(v), now) for k, v in items.items()])

    # gates ----------------------------------------------------------------------------------
    _GATE_COLS = (
        "id, candidate_digest, baseline_digest, dataset_name, dataset_version, policy_digest, verdict, "
        "exit_code, summary, candidate_run, baseline_run, created_at"
    )

    def put_gate(self, rec: GateRecord) -> None:
        rec.created_at = rec.created_at or time.time()
        self.db.execute(
            f"INSERT INTO gates ({self._GATE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [rec.id, rec.candidate_digest, rec.baseline_digest, rec.dataset_name, rec.dataset_version,
             rec.policy_digest, rec.verdict, rec.exit_code, dumps(rec.summary), rec.candidate_run,
             rec.baseline_run, rec.created_at],
        )

    def get_gate(self, gate_id: str) -> GateRecord | None:
        rows = self.db.query(f"SELECT {self._GATE_COLS} FROM gates WHERE id LIKE ?", [gate_id.replace("%", "") + "%"])
        if len(rows) > 1:
            raise ConfigError(f"gate id '{gate_id}' is ambiguous: {len(rows)} gates match")
        return _gate(rows[0]) if rows else None

    def list_gates(self, limit: int = 50) -> list[GateRecord]:
        rows = self.db.query(f"SELECT {self._GATE_COLS} FROM gates ORDER BY created_at DESC LIMIT ?", [limit])
        return [_gate(r) for r in rows]


def _statements(sql: str) -> list[str]:
    return [s.strip() for s in sql.split(";") if s.strip()]


def _release(r: tuple) -> ReleaseRecord:
    return ReleaseRecord(digest=r[0], name=r[1], version=r[2], manifest=loads(r[3]), files=loads(r[4]),
                         source=r[5], created_at=r[6])


def _dataset(r: tuple) -> DatasetRecord:
    return DatasetRecord(name=r[0], version=r[1], row_count=r[2], cohorts=loads(r[3]), description=r[4],
                         source=r[5], created_at=r[6])


def _run(r: tuple) -> RunRecord:
    return RunRecord(id=r[0], release_digest=r[1], dataset_name=r[2], dataset_version=r[3],
                     evaluators_digest=r[4], evaluators=loads(r[5]), status=r[6], summary=loads(r[7]),
                     created_at=r[8], finished_at=r[9])


def _gate(r: tuple) -> GateRecord:
    return GateRecord(id=r[0], candidate_digest=r[1], baseline_digest=r[2], dataset_name=r[3],
                      dataset_version=r[4], policy_digest=r[5], verdict=r[6], exit_code=r[7],
                      summary=loads(r[8]), candidate_run=r[9], baseline_run=r[10], created_at=r[11])
