"""rollout.yaml parsing: valid plans, and one clear line-numbered error for each kind of mistake."""

from __future__ import annotations

import pytest

from sluice.errors import ConfigError
from sluice.rollout.plan import load_plan, parse_plan, plan_from_json

GOOD = """\
deployment: support
candidate: support-bot@1.1
cohorts: [enterprise, free]
allow_narrow: true
analysis:
  metrics:
    - {metric: error_rate, margin: 0.25, critical: true, min_samples: 100}
    - {metric: eval_fail_rate:groundedness, margin: 0.05, relative: false}
    - {metric: feedback_rate:thumbs_down, margin: 0.3}
    - {metric: cost_per_request, margin: 0.2}
steps:
  - mirror: {percent: 50}
    min_duration: 1m
  - weight: {bp: 1000}
    min_requests: 300
    max_duration: 2h
  - pause: {until: manual}
  - pause: {duration: 90s}
  - weight: {bp: 5000}
"""


def test_good_plan(tmp_path):
    p = tmp_path / "rollout.yaml"
    p.write_text(GOOD)
    plan = load_plan(p)
    assert plan.deployment == "support" and [s.kind for s in plan.steps] == ["mirror", "weight", "pause", "pause",
                                                                            "weight"]
    assert plan.durations_of(0) == (60.0, None)
    assert plan.durations_of(1) == (0.0, 7200.0)
    assert plan.durations_of(3)[0] == 90.0
    assert plan.min_requests_of(1) == 300 and plan.min_requests_of(4) == 200
    assert [plan.weight_at(i) for i in range(5)] == [0, 1000, 1000, 1000, 5000]
    assert [plan.mirror_at(i) for i in range(5)] == [50.0, 0.0, 0.0, 0.0, 0.0]
    rules = {r.metric: r for r in plan.all_rules()}
    assert rules["error_rate"].critical and rules["error_rate"].min_samples == 100
    assert rules["cost_per_request"].kind == "mean" and rules["eval_fail_rate:groundedness"].kind == "rate"
    assert not rules["eval_fail_rate:groundedness"].relative


def test_default_analysis_when_none_given():
    plan = parse_plan("deployment: d\ncandidate: r@2\nsteps:\n  - weight: {bp: 100}\n")
    assert [r.metric for r in plan.all_rules()][0] == "error_rate"


@pytest.mark.parametrize("text, line, words", [
    ("deployment: d\ncandidate: r@2\nsteps:\n  - weight: {bp: 0}\n", 4, "steps[0].weight.bp"),
    ("deployment: d\ncandidate: r@2\nsteps:\n  - weight: {bp: 10000}\n", 4, "no stable traffic"),
    ("deployment: d\ncandidate: r@2\nsteps:\n  - weight: {bp: 10}\n    pause: {until: manual}\n", 4, "exactly one"),
    ("deployment: d\ncandidate: r@2\nsteps:\n  - pause: {duration: soon}\n", 4, "not a duration"),
    ("deployment: d\ncandidate: r@2\nanalysis:\n  metrics:\n    - {metric: vibes, margin: 1}\nsteps:\n"
     "  - weight: {bp: 10}\n", 5, "unknown metric 'vibes'"),
    ("deployment: d\ncandidate: r@2\nsteps:\n  - mirror: {percent: 10}\n", 3, "never give the canary"),
    ("deployment: d\ncandidate: r@2\nstepz: []\nsteps:\n  - weight: {bp: 10}\n", 3, "field 'stepz': is not a known"),
    ("deployment: d\ncandidate: r@2\nsteps:\n  - weight: {bp: 10}\n    min_duration: 1h\n    max_duration: 1m\n",
     4, "shorter"),
])
def test_errors_name_line_and_field(tmp_path, text, line, words):
    p = tmp_path / "rollout.yaml"
    p.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_plan(p)
    msg = str(e.value)
    assert f"rollout.yaml:{line}" in msg and words in msg, msg
    assert "\n" not in msg


def test_inline_json_errors_name_the_field():
    with pytest.raises(ConfigError) as e:
        plan_from_json({"deployment": "d", "candidate": "x", "steps": [{"weight": {"bp": 20000}}]})
    assert "steps[0].weight.bp" in str(e.value)
    with pytest.raises(ConfigError):
        plan_from_json(["not", "an", "object"])


def test_init_scaffolds_a_valid_plan(tmp_path):
    from sluice.demo.project import write_project

    paths = write_project(tmp_path / "p")
    plan = load_plan(paths["rollout"])
    assert plan.deployment == "support" and plan.candidate == "support-agent@1.2.0" and plan.allow_narrow
    assert plan.steps[-1].weight.bp == 5000 and "enterprise" in plan.cohorts
