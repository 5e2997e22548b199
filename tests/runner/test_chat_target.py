"""The chat target end to end against the scripted upstream on loopback."""

from __future__ import annotations

import pytest

from sluice.errors import ConfigError
from sluice.runner.pacing import RetryPolicy
from sluice.testing.upstream import scripted_upstream

from runner_helpers import closed_port_url, release, rows, run


def outputs(result):
    return {rid: rec["output"] for rid, rec in result.records.items()}


def test_all_rows_answered_stored_and_priced(mem_store):
    with scripted_upstream() as url:
        res = run(release(url, cost={"input": 2.0, "output": 10.0}), rows(20), mem_store)
        assert url.stats()["requests"] == 20
    out = outputs(res)
    assert res.status == "done" and len(out) == 20 and res.executed == 20
    r3 = out["r3"]
    assert r3["output"] == "echo: question 3" and r3["model"] == "m1" and r3["attempts"] == 1
    # prompt: "Be brief." (9 chars -> 3) + "question 3" (10 -> 3) = 6 tokens; answer 16 chars -> 4
    assert (r3["usage"]["prompt_tokens"], r3["usage"]["completion_tokens"]) == (6, 4)
    assert r3["cost"] == pytest.approx((6 * 2.0 + 4 * 10.0) / 1e6)
    assert mem_store.runs[res.run_id].status == "done"
    assert mem_store.runs[res.run_id].summary["ok"] == 20
    assert set(mem_store.rows[res.run_id]) == {f"r{i}" for i in range(20)}


def test_429_retry_after_is_honoured(mem_store):
    with scripted_upstream() as url:
        res = run(release(url), rows(1, "q [[429:0.3x2]]"), mem_store)
        log = url.stats()["log"]
    out = outputs(res)["r0"]
    assert out["error"] is None and out["attempts"] == 3
    assert [e["mode"] for e in log] == ["429", "429", None]
    # the server asked for 0.3 s; the retries came no sooner (backoff jitter would be <= 5 ms)
    assert log[1]["t"] - log[0]["t"] >= 0.29 and log[2]["t"] - log[1]["t"] >= 0.29


def test_retry_after_is_capped(mem_store):
    policy = RetryPolicy(retries=1, base_s=0.001, cap_s=0.001, max_retry_after_s=0.05)
    with scripted_upstream() as url:
        res = run(release(url), rows(1, "q [[429:3600x1]]"), mem_store, retry_policy=policy)
        assert url.stats()["requests"] == 2
    assert outputs(res)["r0"]["error"] is None


def test_5xx_then_success(mem_store):
    with scripted_upstream() as url:
        res = run(release(url), rows(3, "q{i} [[500x2]]"), mem_store)
        assert url.stats()["requests"] == 9
    assert {o["attempts"] for o in outputs(res).values()} == {3}
    assert all(o["error"] is None for o in outputs(res).values())


def test_retries_exhausted_becomes_row_error_without_aborting(mem_store):
    data = rows(2) + [{"id": "bad", "input": [{"role": "user", "content": "x [[503]]"}]}]
    with scripted_upstream() as url:
        res = run(release(url), data, mem_store, retries=2, retry_policy=None)
        assert url.stats()["requests"] == 2 + 3
    bad = outputs(res)["bad"]
    assert (bad["error_kind"], bad["attempts"]) == ("http_5xx", 3) and "HTTP 503" in bad["error"]
    assert res.summary["errors_by_kind"] == {"http_5xx": 1} and res.summary["ok"] == 2


def test_fallback_on_connection_refused(mem_store):
    with scripted_upstream() as url:
        rel = release(closed_port_url(), fallbacks=[{"provider": "openai", "model": "m2", "base_url": url}])
        res = run(rel, rows(2), mem_store, retry_policy=RetryPolicy(retries=1, base_s=0.001, cap_s=0.001))
        assert url.stats()["requests"] == 2
    r0 = outputs(res)["r0"]
    assert r0["model"] == "m2" and r0["fallback_from"] == ["m1"] and r0["attempts"] == 3
    assert r0["output"] == "echo: question 0"
    assert res.summary["fallbacks"] == 2 and res.summary["models"] == {"m2": 2}


def test_context_length_skips_retries_and_falls_back(mem_store):
    with scripted_upstream(modes={"m1": "context"}) as url:
        rel = release(url, fallbacks=[{"provider": "openai", "model": "m2", "base_url": url}])
        res = run(rel, rows(1), mem_store)
        assert [e["model"] for e in url.stats()["log"]] == ["m1", "m2"]
    assert outputs(res)["r0"]["model"] == "m2"


def test_non_retryable_400_is_neither_retried_nor_failed_over(mem_store):
    with scripted_upstream(modes={"m1": "400"}) as url:
        rel = release(url, fallbacks=[{"provider": "openai", "model": "m2", "base_url": url}])
        res = run(rel, rows(1), mem_store)
        assert [e["model"] for e in url.stats()["log"]] == ["m1"]
    out = outputs(res)["r0"]
    assert (out["error_kind"], out["attempts"], out["model"]) == ("http_4xx", 1, "m1")


def test_malformed_json_is_not_retried(mem_store):
    with scripted_upstream() as url:
        res = run(release(url), rows(1, "[[malformed]]"), mem_store)
        assert url.stats()["requests"] == 1
    out = outputs(res)["r0"]
    assert out["error_kind"] == "malformed" and "not a valid chat completion" in out["error"]


def test_request_timeout_is_retried_then_recorded(mem_store):
    with scripted_upstream() as url:
        res = run(release(url, timeout_s=0.1), rows(1, "[[slow:1]]"), mem_store,
                  retry_policy=RetryPolicy(retries=1, base_s=0.001, cap_s=0.001))
        assert url.stats()["requests"] == 2
    out = outputs(res)["r0"]
    assert (out["error_kind"], out["attempts"]) == ("timeout", 2)


def test_row_timeout_bounds_the_whole_row(mem_store):
    with scripted_upstream() as url:
        res = run(release(url), rows(1, "[[slow:2]]"), mem_store, timeout=0.1)
    out = outputs(res)["r0"]
    assert out["error_kind"] == "timeout" and "row timed out after 0.1s" in out["error"]


def test_missing_key_env_var_fails_before_any_request(mem_store, monkeypatch):
    monkeypatch.delenv("SLUICE_NO_SUCH_KEY", raising=False)
    with scripted_upstream() as url:
        with pytest.raises(ConfigError, match="SLUICE_NO_SUCH_KEY is not set"):
            run(release(url, api_key_env="SLUICE_NO_SUCH_KEY"), rows(3), mem_store)
        assert url.stats()["requests"] == 0
    assert mem_store.runs == {}


def test_rows_given_as_row_models_and_bad_rows_named(mem_store):
    from sluice.dataset.row import Row
    from sluice.errors import DataError
    with scripted_upstream() as url:
        res = run(release(url), [Row.model_validate(r) for r in rows(2)], mem_store)
        assert len(res.records) == 2
        with pytest.raises(DataError, match="row r1"):
            run(release(url), rows(1) + [{"id": "r1", "input": []}], mem_store)
        with pytest.raises(DataError, match="duplicate row id"):
            run(release(url), rows(1) + rows(1), mem_store)
