"""Online evaluation: the same sampled share of both arms, results recorded against the trace, a bounded
backlog that drops (and counts) rather than blocks."""

from __future__ import annotations

import orjson

from rollout_spans import gateway_span, put
from sluice.rollout import store as rs
from sluice.rollout.online_eval import Job, OnlineEvaluation, sampled

CAND, STAB = "sha256:" + "c" * 64, "sha256:" + "s" * 64


def _rollout(store, rate: float, evaluators: list) -> rs.Rollout:
    ro = rs.Rollout(id=rs.new_id(), deployment="d", status="running", candidate_ref="bot@2", candidate_digest=CAND,
                    stable_ref="bot@1", stable_digest=STAB,
                    plan={"online_eval": {"sample_rate": rate, "evaluators": evaluators}, "steps": []},
                    state={"window_ns": 0})
    rs.insert(store, ro)
    return ro


def _chat_span(arm: str, release: str, answer: str, start_s: float):
    sp = gateway_span(deployment="d", arm=arm, release=release, start_s=start_s)
    sp.attributes["input.value"] = orjson.dumps({"messages": [{"role": "user", "content": "q?"}]}).decode()
    sp.attributes["output.value"] = answer
    return sp


def test_sampling_is_the_same_rule_for_every_trace():
    ids = ["%032x" % i for i in range(4000)]
    share = sum(sampled(t, 0.25) for t in ids) / len(ids)
    assert 0.2 < share < 0.3
    assert all(sampled(t, 0.25) == sampled(t, 0.25) for t in ids[:50])
    assert not any(sampled(t, 0.0) for t in ids[:50]) and all(sampled(t, 1.0) for t in ids[:50])


def test_results_recorded_against_both_arms(store):
    _rollout(store, 1.0, ["pii_leak"])
    put(store, [_chat_span("canary", CAND, "mail me at bob@example.com", 1.0),
                _chat_span("stable", STAB, "happy to help", 1.0),
                _chat_span("shadow", CAND, "not an arm of this comparison", 1.0)])
    oe = OnlineEvaluation(store, queue_max=10)
    assert oe.poll(int(5e9)) == 2
    assert oe.poll(int(5e9)) == 0  # the same window is not taken twice
    while not oe._queue.empty():
        oe.run(oe._queue.get_nowait())
    rows = store.db.query("SELECT s.route, e.evaluator, e.passed FROM span_evals e JOIN spans s "
                          "ON s.trace_id = e.trace_id ORDER BY s.route")
    assert rows == [("canary", "pii_leak", False), ("stable", "pii_leak", True)]


def test_full_backlog_drops_and_counts(store):
    oe = OnlineEvaluation(store, queue_max=2)
    jobs = [Job("r", "%032x" % i, "s", {"response": "x"}, ("pii_leak",)) for i in range(5)]
    assert [oe.offer(j) for j in jobs] == [True, True, False, False, False]
    assert (oe.enqueued, oe.dropped) == (2, 3)


def test_workers_survive_a_bad_evaluator(store):
    oe = OnlineEvaluation(store, queue_max=10, workers=1)
    oe.start()
    try:
        oe.offer(Job("r", "a" * 32, "s", {"response": "fine"}, ("no_such_evaluator", "pii_leak")))
    finally:
        oe.stop()
    assert oe.evaluated == 1 and store.db.query("SELECT evaluator, passed FROM span_evals") == [("pii_leak", True)]
