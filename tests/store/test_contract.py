"""The Store contract: every backend must pass these."""

from __future__ import annotations

import threading

import pytest

from sluice.errors import ConfigError
from sluice.store import DatasetRecord, GateRecord, ReleaseRecord, RunRecord, open_store
from sluice.store.migrations import MIGRATIONS


def _release(digest="sha256:aa11", name="bot", version="1"):
    return ReleaseRecord(digest=digest, name=name, version=version, manifest={"name": name, "k": [1, 2]},
                         files={"p.jinja": "sha256:ff"})


def test_migrations_applied_once(store):
    assert store.applied_migrations() == sorted(m.name for m in MIGRATIONS)
    assert store.migrate() == []


def test_release_roundtrip_and_immutability(store):
    assert store.put_release(_release()) is True
    assert store.put_release(_release()) is False
    got = store.get_release("sha256:aa11")
    assert got.manifest == {"name": "bot", "k": [1, 2]} and got.files == {"p.jinja": "sha256:ff"}
    assert store.get_release("sha256:nope") is None


def test_list_releases_newest_first_and_by_name(store):
    store.put_release(ReleaseRecord("sha256:1", "a", "1", {}, {}, created_at=100.0))
    store.put_release(ReleaseRecord("sha256:2", "a", "2", {}, {}, created_at=200.0))
    store.put_release(ReleaseRecord("sha256:3", "b", "1", {}, {}, created_at=300.0))
    assert [r.digest for r in store.list_releases("a")] == ["sha256:2", "sha256:1"]
    assert [r.digest for r in store.list_releases()] == ["sha256:3", "sha256:2", "sha256:1"]


def test_blobs(store):
    store.put_blobs({"sha256:x": b"hello \x00 bytes", "sha256:y": b""})
    store.put_blobs({"sha256:x": b"hello \x00 bytes"})
    assert store.get_blobs(["sha256:x", "sha256:y", "sha256:z"]) == {"sha256:x": b"hello \x00 bytes", "sha256:y": b""}


def test_dataset_versions_rows_in_order(store):
    rows = [{"id": str(i), "cohort": "c" + str(i % 2), "input": {"q": i}} for i in range(7)]
    rec = DatasetRecord(name="support", version="sha256:abcdef01", row_count=7, cohorts={"c0": 4, "c1": 3})
    assert store.put_dataset(rec, rows) is True
    assert store.put_dataset(rec, rows) is False
    assert store.get_dataset_rows("sha256:abcdef01") == rows
    assert store.get_dataset("support").version == "sha256:abcdef01"
    assert store.get_dataset("support", "abcdef").cohorts == {"c0": 4, "c1": 3}
    assert store.get_dataset("support", "sha256:ffff") is None
    assert store.get_dataset("other") is None


def test_dataset_prefix_ambiguity_is_an_error(store):
    store.put_dataset(DatasetRecord("d", "sha256:ab01", 0, {}, created_at=1.0), [])
    store.put_dataset(DatasetRecord("d", "sha256:ab02", 0, {}, created_at=2.0), [])
    assert store.get_dataset("d").version == "sha256:ab02"
    with pytest.raises(ConfigError, match="ambiguous"):
        store.get_dataset("d", "ab0")


def test_dataset_insert_is_atomic(store):
    rows = [{"id": "1"}, {"id": "2"}]
    bad = DatasetRecord(name="d", version="sha256:01", row_count=2, cohorts={})
    original = store.db.insert_rows

    def boom(sql, batch):
        raise RuntimeError("disk full")

    store.db.insert_rows = boom
    with pytest.raises(RuntimeError):
        store.put_dataset(bad, rows)
    store.db.insert_rows = original
    assert store.get_dataset("d") is None
    assert store.get_dataset_rows("sha256:01") == []


def test_runs_and_rows(store):
    run = RunRecord(id="r1", release_digest="sha256:rel", dataset_name="d", dataset_version="sha256:v",
                    evaluators_digest="sha256:e", evaluators=[{"name": "exact_match", "version": "1"}])
    store.create_run(run)
    store.put_run_rows("r1", [("a", "c1", {"output": {"output": "x"}}), ("b", "c2", {"output": {"output": "y"}})])
    store.put_run_rows("r1", [("a", "c1", {"output": {"output": "x2"}})])  # upsert
    assert store.get_run_rows("r1") == {"a": {"output": {"output": "x2"}}, "b": {"output": {"output": "y"}}}
    assert store.find_run("sha256:rel", "sha256:v", "sha256:e").id == "r1"
    assert store.find_run("sha256:rel", "sha256:v", "sha256:other") is None
    store.update_run("r1", status="done", summary={"rows": 2})
    got = store.get_run("r1")
    assert got.status == "done" and got.summary == {"rows": 2} and got.finished_at is not None
    assert [r.id for r in store.list_runs()] == ["r1"]


def test_response_cache(store):
    store.cache_put({f"k{i}": {"output": i} for i in range(1200)})
    got = store.cache_get([f"k{i}" for i in range(0, 1300, 100)])
    assert got == {f"k{i}": {"output": i} for i in range(0, 1200, 100)}
    store.cache_put({"k1": {"output": "new"}})
    assert store.cache_get(["k1"]) == {"k1": {"output": "new"}}


def test_gates(store):
    rec = GateRecord(id="g-123", candidate_digest="sha256:c", baseline_digest="sha256:b", dataset_name="d",
                     dataset_version="sha256:v", policy_digest="sha256:p", verdict="fail", exit_code=1,
                     summary={"reasons": ["x"]})
    store.put_gate(rec)
    assert store.get_gate("g-1").summary == {"reasons": ["x"]}
    assert [g.verdict for g in store.list_gates()] == ["fail"]


def test_concurrent_writers_share_one_store(store):
    def write(n):
        store.put_run_rows("r", [(f"{n}-{i}", "c", {"i": i}) for i in range(20)])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len(store.get_run_rows("r")) == 80


def test_unknown_url_scheme():
    with pytest.raises(ConfigError, match="unsupported store URL"):
        open_store("sqlite:///x.db")


def test_unreachable_postgres_is_one_clear_line():
    with pytest.raises(ConfigError, match="cannot connect to PostgreSQL at postgresql://u:\\*\\*\\*@127.0.0.1:1/x"):
        open_store("postgresql://u:secret@127.0.0.1:1/x")


def test_duckdb_file_in_use_is_a_clear_error(tmp_path):
    import subprocess
    import sys

    url = f"duckdb:///{tmp_path}/s.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from sluice.store import open_store; s=open_store({url!r}); print('ok', flush=True); import time; time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(ConfigError, match="in use by another process"):
            open_store(url)
    finally:
        holder.kill()
        holder.wait()
