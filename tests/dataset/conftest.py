"""A dict-backed store holding only datasets, counting writes so atomicity can be checked."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from sluice.store.records import DatasetRecord


class FakeDatasetStore:
    url = "memory://"

    def __init__(self):
        self.datasets: dict[tuple[str, str], DatasetRecord] = {}
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.writes = 0
        self.clock = 0.0

    def put_dataset(self, rec: DatasetRecord, rows: list[dict[str, Any]]) -> bool:
        if (rec.name, rec.version) in self.datasets:
            return False
        self.writes += 1
        self.clock += 1
        rec.created_at = self.clock
        self.datasets[(rec.name, rec.version)] = rec
        self.rows.setdefault(rec.version, copy.deepcopy(rows))
        return True

    def get_dataset(self, name: str, version: str | None = None) -> DatasetRecord | None:
        recs = self.list_datasets(name)
        if version:
            recs = [r for r in recs if r.version.removeprefix("sha256:").startswith(version.removeprefix("sha256:"))]
        return recs[0] if recs else None

    def list_datasets(self, name: str | None = None) -> list[DatasetRecord]:
        recs = [r for r in self.datasets.values() if name is None or r.name == name]
        return sorted(recs, key=lambda r: r.created_at, reverse=True)

    def get_dataset_rows(self, version: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.rows.get(version, []))


@pytest.fixture
def fake_store() -> FakeDatasetStore:
    return FakeDatasetStore()
