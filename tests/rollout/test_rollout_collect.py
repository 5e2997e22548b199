"""What a look measures from the store: arms told apart, concurrent windows, frozen latency quantiles,
evaluation results and feedback attributed to their trace's arm and cohort."""

from __future__ import annotations

from rollout_spans import app_span, gateway_span, put, put_eval, put_feedback, trace_id
from sluice.rollout.collect import Arms, collect
from sluice.rollout.measures import OVERALL, MetricRule

CAND, STAB = "sha256:" + "c" * 64, "sha256:" + "s" * 64
ARMS = Arms("support", Arms.names(CAND, "bot@2"), Arms.names(STAB, "bot@1"))


def _by(look):
    return {(b.metric, b.cohort): b for b in look.batches}


def test_error_rates_per_arm_and_cohort(store):
    spans = []
    for i in range(10):
        spans.append(gateway_span(deployment="support", arm="canary", release=CAND, start_s=100 + i,
                                  cohort="free", error=i < 3))
        spans.append(gateway_span(deployment="support", arm="stable", release=STAB, start_s=100 + i,
                                  cohort="enterprise" if i % 2 else "free", error=i == 0))
    # a canary request answered by the stable model after the canary failed: still the canary's
    spans.append(gateway_span(deployment="support", arm="canary", route="fallback", release=STAB, start_s=105))
    # outside the window, another deployment, and a shadow copy: none of them count
    spans.append(gateway_span(deployment="support", arm="canary", release=CAND, start_s=300, error=True))
    spans.append(gateway_span(deployment="other", arm="canary", release=CAND, start_s=105, error=True))
    spans.append(gateway_span(deployment="support", arm="shadow", release=CAND, start_s=105, error=True))
    put(store, spans)
    rules = [MetricRule("error_rate", "rate", 0.2), MetricRule("fallback_rate", "rate", 0.2)]
    look = collect(store, ARMS, rules, ["free", "enterprise"], int(100e9), int(200e9), {})
    b = _by(look)
    assert (b["error_rate", OVERALL].canary.n, b["error_rate", OVERALL].canary.events) == (11, 3)
    assert (b["error_rate", OVERALL].stable.n, b["error_rate", OVERALL].stable.events) == (10, 1)
    assert (b["error_rate", "free"].stable.n, b["error_rate", "free"].stable.events) == (5, 1)
    assert b["error_rate", "enterprise"].canary.n == 0 and b["error_rate", "enterprise"].stable.n == 5
    assert b["fallback_rate", OVERALL].canary.events == 1
    assert abs(b["error_rate", OVERALL].canary_share - 11 / 21) < 1e-9
    assert (look.canary_requests, look.stable_requests) == (11, 10)


def test_mirror_step_compares_shadow_copies_with_stable(store):
    put(store, [gateway_span(deployment="support", arm="shadow", release=CAND, start_s=10, error=True),
                gateway_span(deployment="support", arm="stable", release=STAB, start_s=10)])
    arms = Arms(ARMS.deployment, ARMS.candidate, ARMS.stable, mirror=True)
    b = _by(collect(store, arms, [MetricRule("error_rate", "rate", 0.2)], [], 0, int(20e9), {}))
    assert (b["error_rate", OVERALL].canary.events, b["error_rate", OVERALL].stable.n) == (1, 1)


def test_app_traces_count_by_release_attribute(store):
    put(store, [app_span(deployment="support", release="bot@2", start_s=10, error=True, cohort="free"),
                app_span(deployment="support", release="2", start_s=11),
                app_span(deployment="support", release="bot@1", start_s=12, cohort="free"),
                app_span(deployment="support", release="bot@9", start_s=13)])
    look = collect(store, ARMS, [MetricRule("error_rate", "rate", 0.2)], ["free"], 0, int(20e9), {})
    b = _by(look)
    assert (b["error_rate", OVERALL].canary.n, b["error_rate", OVERALL].canary.events) == (2, 1)
    assert b["error_rate", OVERALL].stable.n == 1 and b["error_rate", "free"].canary.n == 1


def test_latency_quantile_frozen_from_stable_then_exceedance(store):
    rule = [MetricRule("latency_p95", "rate", 0.5)]
    put(store, [gateway_span(deployment="support", arm="stable", release=STAB, start_s=1, duration_ms=10 + i)
                for i in range(60)])
    first = collect(store, ARMS, rule, [], 0, int(2e9), {})
    assert first.batches == [] and first.frozen["latency_p95"][OVERALL] == 66.0  # 57th of the 60 values 10..69
    put(store, [gateway_span(deployment="support", arm="canary", release=CAND, start_s=3, duration_ms=d)
                for d in (50, 60, 68, 80, 90)] +
        [gateway_span(deployment="support", arm="stable", release=STAB, start_s=3, duration_ms=d) for d in (20, 70)])
    second = collect(store, ARMS, rule, [], int(2e9), int(4e9), first.frozen)
    b = _by(second)["latency_p95", OVERALL]
    assert (b.canary.n, b.canary.events, b.stable.n, b.stable.events) == (5, 3, 2, 1)
    assert second.frozen == first.frozen


def test_means_evals_and_feedback(store):
    t_c, t_s = trace_id(), trace_id()
    put(store, [gateway_span(deployment="support", arm="canary", release=CAND, start_s=10, tokens=30, cost=0.3,
                             trace=t_c, cohort="free"),
                gateway_span(deployment="support", arm="stable", release=STAB, start_s=10, tokens=10, cost=0.1,
                             trace=t_s)])
    put_eval(store, t_c, "groundedness", False, at=15.0)
    put_eval(store, t_s, "groundedness", True, at=15.0)
    put_eval(store, t_s, "groundedness", False, at=99.0)  # recorded after the window
    put_feedback(store, t_c, "thumbs_down", at=16.0)
    put_feedback(store, t_c, "thumbs_down", at=17.0)  # the same trace twice counts once
    rules = [MetricRule("cost_per_request", "mean", 0.3), MetricRule("tokens_per_request", "mean", 0.3),
             MetricRule("eval_fail_rate:groundedness", "rate", 0.1, relative=False),
             MetricRule("feedback_rate:thumbs_down", "rate", 0.3)]
    b = _by(collect(store, ARMS, rules, ["free"], 0, int(20e9), {}))
    assert b["cost_per_request", OVERALL].canary.total == 0.3 and b["tokens_per_request", OVERALL].stable.total == 10
    ev = b["eval_fail_rate:groundedness", OVERALL]
    assert (ev.canary.n, ev.canary.events, ev.stable.n, ev.stable.events) == (1, 1, 1, 0)
    assert b["eval_fail_rate:groundedness", "free"].canary.events == 1
    fb = b["feedback_rate:thumbs_down", OVERALL]
    assert (fb.canary.n, fb.canary.events, fb.stable.events) == (1, 1, 0)
