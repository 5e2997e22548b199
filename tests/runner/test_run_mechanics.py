"""Concurrency, rate limits, batching, cache and resume, counted at the upstream and the store."""

from __future__ import annotations

import asyncio

from sluice.evals.result import EvalResult
from sluice.runner.run import run_release
from sluice.testing.upstream import scripted_upstream

from runner_helpers import FAST, release, rows, run


def test_concurrency_bound_is_respected(mem_store):
    with scripted_upstream(latency_ms=30) as url:
        run(release(url), rows(40), mem_store, concurrency=5)
        stats = url.stats()
    assert stats["requests"] == 40 and stats["max_in_flight"] == 5


def test_rate_limit_spaces_requests(mem_store):
    with scripted_upstream() as url:
        run(release(url), rows(12), mem_store, concurrency=8, rate_limits={url: 20})
        times = sorted(e["t"] for e in url.stats()["log"])
    # 20 rps = one request per 50 ms: 12 requests need 11 intervals (0.55 s); without the limit all
    # 12 arrive within a few milliseconds. The bounds leave room for a loaded machine delaying the
    # first request or bunching a few, and still fail for an unpaced run by a wide margin.
    assert times[-1] - times[0] >= 0.3
    most_in_100ms = max(sum(1 for u in times if t <= u < t + 0.1) for t in times)
    assert most_in_100ms <= 6


def test_rate_limit_by_provider_name_applies_to_its_models_only(mem_store):
    with scripted_upstream() as url:
        run(release(url), rows(6), mem_store, concurrency=6, rate_limits={"scripted": 1})
        times = sorted(e["t"] for e in url.stats()["log"])
    assert times[-1] - times[0] < 3.0  # not paced by a "scripted" limit of 1 rps (that takes >= 5 s)


def test_results_are_written_in_batches_not_per_row(mem_store):
    with scripted_upstream() as url:
        run(release(url), rows(120), mem_store, batch_rows=50, flush_interval_s=3600)
    assert mem_store.calls.count("put_run_rows") == 3  # 50 + 50 + 20
    assert mem_store.calls.count("cache_get") == 1


def test_cache_answers_a_second_run_without_upstream_calls(run_store):
    with scripted_upstream() as url:
        first = run(release(url), rows(10), run_store)
        # another evaluator set is another run; the responses come from the cache
        second = run(release(url), rows(10), run_store, evaluators=[{"name": "exact", "version": "1"}])
        assert url.stats()["requests"] == 10
        third = run(release(url), rows(10), run_store, evaluators=[{"name": "x"}], use_cache=False)
        assert url.stats()["requests"] == 20
    assert second.run_id != first.run_id and second.cached == 10 and second.executed == 0
    a, b = first.records["r4"]["output"], second.records["r4"]["output"]
    assert b["cached"] is True and b["output"] == a["output"] and b["usage"] == a["usage"]
    assert third.cached == 0


def test_errors_are_not_cached(run_store):
    with scripted_upstream() as url:
        run(release(url), rows(1, "[[400]]"), run_store)
        run(release(url), rows(1, "[[400]]"), run_store, evaluators=[{"name": "x"}])
        assert url.stats()["requests"] == 2


def test_a_changed_release_misses_the_cache(run_store):
    with scripted_upstream() as url:
        run(release(url), rows(3), run_store)
        run(release(url, model="m9"), rows(3), run_store)
        assert url.stats()["requests"] == 6


def test_same_run_again_does_nothing(run_store):
    with scripted_upstream() as url:
        first = run(release(url), rows(5), run_store)
        again = run(release(url), rows(5), run_store)
        assert url.stats()["requests"] == 5
    assert again.run_id == first.run_id and again.resumed == 5 and again.executed == 0
    assert len(again.records) == 5


def test_resume_after_interruption_requests_only_missing_rows(run_store):
    data = rows(60)
    with scripted_upstream(latency_ms=20) as url:
        rel = release(url)

        async def interrupted():
            task = asyncio.create_task(run_release(rel, data, store=run_store, dataset_version="sha256:ds1",
                                                   concurrency=4, batch_rows=5, progress=False, use_cache=False,
                                                   retry_policy=FAST))
            for _ in range(2000):  # bounded wait until about a third of the rows were requested
                if url.stats()["requests"] >= 20:
                    break
                await asyncio.sleep(0.005)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                return
            raise AssertionError("the run finished before it could be interrupted")

        asyncio.run(interrupted())
        [run_id] = run_store.run_ids
        assert run_store.get_run(run_id).status == "interrupted"
        stored = set(run_store.get_run_rows(run_id))
        assert 0 < len(stored) < 60
        first_requests = url.stats()["requests"]
        url.reset()
        res = run(rel, data, run_store, concurrency=4, use_cache=False)
        requested = {e["last_user"] for e in url.stats()["log"]}
    assert res.run_id == run_id and res.resumed == len(stored)
    assert requested == {f"question {i}" for i in range(60) if f"r{i}" not in stored}
    assert first_requests >= len(stored)
    assert len(res.records) == 60 and run_store.get_run(run_id).status == "done"
    assert set(run_store.get_run_rows(run_id)) == {f"r{i}" for i in range(60)}


def test_evaluate_hook_results_are_stored_with_cohort(run_store):
    def evaluate(row, out):
        ok = out.output == f"echo: {row.last_user_text()}"
        return {"echo": EvalResult(score=1.0 if ok else 0.0, passed=ok, evaluator="echo", version="1")}

    async def aevaluate(row, out):
        return evaluate(row, out)

    with scripted_upstream() as url:
        res = run(release(url), rows(3, cohort="enterprise"), run_store, evaluate=evaluate,
                  evaluators=[{"name": "echo", "version": "1"}])
        res2 = run(release(url), rows(3, cohort="enterprise"), run_store, evaluate=aevaluate,
                   evaluators=[{"name": "echo", "version": "2"}])
    rec = run_store.get_run_rows(res.run_id)["r1"]
    assert rec["cohort"] == "enterprise" and rec["evals"]["echo"]["passed"] is True
    assert rec["evals"]["echo"]["score"] == 1.0
    assert res2.records["r1"]["evals"]["echo"]["passed"] is True
    assert run_store.get_run(res.run_id).evaluators == [{"name": "echo", "version": "1"}]


def test_no_store_call_runs_on_the_event_loop(run_store):
    """Batches are written while rows are in flight (batch_rows=5 of 40): on DuckDB a write on the
    loop's thread would stall every request and its timeout."""
    with scripted_upstream() as url:
        res = run(release(url), rows(40), run_store, concurrency=4, batch_rows=5)
        again = run(release(url), rows(40), run_store, concurrency=4)
    assert res.executed == 40 and again.resumed == 40
    assert run_store.on_loop == [], run_store.on_loop
    assert len(run_store.get_run_rows(res.run_id)) == 40
