import pytest

from sluice.errors import ConfigError
from sluice.gate.policy import default_policy, load_policy, parse_policy


def test_empty_policy_is_the_default():
    assert parse_policy("") == default_policy()
    assert parse_policy("").digest == default_policy().digest
    t = default_policy().thresholds_for("anything", None)
    assert t.max_regression == "auto" and t.min_pass_rate is None


def test_thresholds_inherit_field_by_field():
    p = parse_policy("""
thresholds: {min_pass_rate: 0.8}
evaluators:
  - name: groundedness
    critical: true
    thresholds: {max_regression: 0.0}
cohorts:
  rules:
    billing:
      thresholds: {min_pass_rate: 0.9}
      evaluators:
        groundedness: {max_regression: null}
""")
    overall = p.thresholds_for("groundedness", None)
    assert (overall.min_pass_rate, overall.max_regression) == (0.8, 0.0)
    billing = p.thresholds_for("groundedness", "billing")
    assert (billing.min_pass_rate, billing.max_regression) == (0.9, None)  # explicit null switches it off
    other = p.thresholds_for("tone", "billing")
    assert (other.min_pass_rate, other.max_regression) == (0.9, "auto")
    assert p.is_critical("groundedness") and not p.is_critical("tone")


def test_unknown_field_names_file_line_and_field(tmp_path):
    f = tmp_path / "gate.yaml"
    f.write_text("confidence: 0.9\nlatency:\n  p95_max_msec: 300\n")
    with pytest.raises(ConfigError) as e:
        load_policy(f)
    assert e.value.location.line == 3
    assert e.value.location.field == "latency.p95_max_msec"
    assert "gate.yaml:3" in str(e.value)


def test_out_of_range_value_is_a_config_error():
    with pytest.raises(ConfigError) as e:
        parse_policy("thresholds:\n  min_pass_rate: 1.5\n")
    assert e.value.location.field == "thresholds.min_pass_rate"


def test_duplicate_evaluator_rejected():
    with pytest.raises(ConfigError, match="listed twice"):
        parse_policy("evaluators:\n  - name: a\n  - name: a\n")


def test_digest_distinguishes_null_from_unset():
    assert parse_policy("thresholds: {max_regression: null}").digest != default_policy().digest
    assert parse_policy("confidence: 0.95").digest == default_policy().digest
