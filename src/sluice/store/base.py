"""The Store contract. Every backend (DuckDB embedded, PostgreSQL) passes the same tests
(tests/store/test_contract.py)."""

from __future__ import annotations

from typing import Any, Iterable, Protocol

from sluice.store.records import DatasetRecord, GateRecord, ReleaseRecord, RunRecord


class Store(Protocol):
    url: str

    def close(self) -> None: ...

    # releases -------------------------------------------------------------------------------
    def put_release(self, rec: ReleaseRecord) -> bool:
        """Store a release; False when the digest was already there (releases are immutable)."""

    def get_release(self, digest: str) -> ReleaseRecord | None: ...

    def list_releases(self, name: str | None = None) -> list[ReleaseRecord]:
        """Newest first."""

    def put_blobs(self, blobs: dict[str, bytes]) -> None:
        """Store file bodies by content digest (release templates, schemas, scripts)."""

    def get_blobs(self, digests: list[str]) -> dict[str, bytes]: ...

    # datasets -------------------------------------------------------------------------------
    def put_dataset(self, rec: DatasetRecord, rows: list[dict[str, Any]]) -> bool:
        """Store a dataset version and its rows in one transaction; False when it existed."""

    def get_dataset(self, name: str, version: str | None = None) -> DatasetRecord | None:
        """``version`` may be a full digest or a unique prefix; None means the newest."""

    def list_datasets(self, name: str | None = None) -> list[DatasetRecord]: ...

    def get_dataset_rows(self, version: str) -> list[dict[str, Any]]:
        """Rows in import order."""

    # runs -----------------------------------------------------------------------------------
    def create_run(self, run: RunRecord) -> None: ...

    def get_run(self, run_id: str) -> RunRecord | None: ...

    def find_run(self, release_digest: str, dataset_version: str, evaluators_digest: str) -> RunRecord | None:
        """The newest run of that release on that dataset version with those evaluators."""

    def list_runs(self, limit: int = 50) -> list[RunRecord]: ...

    def update_run(self, run_id: str, *, status: str, summary: dict[str, Any] | None = None) -> None: ...

    def put_run_rows(self, run_id: str, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        """Upsert (row_id, cohort, record) tuples in one transaction."""

    def get_run_rows(self, run_id: str) -> dict[str, dict[str, Any]]: ...

    # response cache -------------------------------------------------------------------------
    def cache_get(self, keys: list[str]) -> dict[str, dict[str, Any]]: ...

    def cache_put(self, items: dict[str, dict[str, Any]]) -> None: ...

    # gates ----------------------------------------------------------------------------------
    def put_gate(self, rec: GateRecord) -> None: ...

    def get_gate(self, gate_id: str) -> GateRecord | None: ...

    def list_gates(self, limit: int = 50) -> list[GateRecord]: ...
