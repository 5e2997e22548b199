"""Stores for the runner tests: an in-memory one that counts round trips, and ``run_store``, the
same tests on the in-memory store and on a real DuckDB file, through a proxy that records the
runs created and whether any store call ran on the event loop's thread (it must not)."""

from __future__ import annotations

import asyncio
import copy
from typing import Any, Iterable

import pytest

from sluice.store.records import RunRecord


class MemoryStore:
    url = "memory://"

    def __init__(self) -> None:
        self.runs: dict[str, RunRecord] = {}
        self.rows: dict[str, dict[str, dict[str, Any]]] = {}
        self.cache: dict[str, dict[str, Any]] = {}
        self.calls: list[str] = []  # method names, to count round trips

    def close(self) -> None: ...

    def create_run(self, run: RunRecord) -> None:
        self.calls.append("create_run")
        self.runs[run.id] = copy.deepcopy(run)
        self.rows[run.id] = {}

    def get_run(self, run_id: str) -> RunRecord | None:
        return copy.deepcopy(self.runs.get(run_id))

    def find_run(self, release_digest: str, dataset_version: str, evaluators_digest: str) -> RunRecord | None:
        found = [r for r in self.runs.values() if (r.release_digest, r.dataset_version, r.evaluators_digest)
                 == (release_digest, dataset_version, evaluators_digest)]
        return copy.deepcopy(max(found, key=lambda r: r.created_at)) if found else None

    def update_run(self, run_id: str, *, status: str, summary: dict[str, Any] | None = None) -> None:
        self.calls.append(f"update_run:{status}")
        self.runs[run_id].status = status
        if summary is not None:
            self.runs[run_id].summary = summary

    def put_run_rows(self, run_id: str, rows: Iterable[tuple[str, str, dict[str, Any]]]) -> None:
        self.calls.append("put_run_rows")
        for row_id, _cohort, record in rows:
            self.rows[run_id][row_id] = copy.deepcopy(record)

    def get_run_rows(self, run_id: str) -> dict[str, dict[str, Any]]:
        return copy.deepcopy(self.rows.get(run_id, {}))

    def cache_get(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        self.calls.append("cache_get")
        return {k: copy.deepcopy(self.cache[k]) for k in keys if k in self.cache}

    def cache_put(self, items: dict[str, dict[str, Any]]) -> None:
        self.calls.append("cache_put")
        self.cache.update(copy.deepcopy(items))


@pytest.fixture
def mem_store() -> MemoryStore:
    return MemoryStore()


class Watched:
    """A store proxy: ``run_ids`` in creation order, and ``on_loop``, the store calls made on a
    thread that was running an event loop (a blocking call there stalls every row in flight)."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.run_ids: list[str] = []
        self.on_loop: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr) or name.startswith("_"):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                asyncio.get_running_loop()
                self.on_loop.append(name)
            except RuntimeError:
                pass
            if name == "create_run":
                self.run_ids.append(args[0].id)
            return attr(*args, **kwargs)

        return call


@pytest.fixture(params=["memory", "duckdb"])
def run_store(request, tmp_path):
    if request.param == "memory":
        yield Watched(MemoryStore())
        return
    from sluice.store import open_store

    store = open_store(f"duckdb:///{tmp_path}/runner.duckdb")
    try:
        yield Watched(store)
    finally:
        store.close()
