"""Registry: building from specs, recording arguments for replay, and scoring dataset rows."""

from __future__ import annotations

import json

import pytest

from sluice.dataset.row import ContextDoc, Row, ToolCall
from sluice.errors import ConfigError
from sluice.evals import (
    BaseEvaluator, EvalResult, Groundedness, build, evaluate_row, evaluate_rows, evaluator_spec,
    list_evaluators, register,
)
from sluice.runner.record import RowOutput, Usage

BUILTINS = {"answer_similarity", "contains", "context_relevance", "cost_budget", "exact_match",
            "groundedness", "json_validation", "latency_budget", "llm_judge", "pii_leak",
            "refusal", "regex", "task_completion", "tool_selection_accuracy"}


def test_every_builtin_is_listed_with_a_version() -> None:
    listed = {e["name"]: e for e in list_evaluators()}
    assert BUILTINS <= set(listed)
    assert all(listed[n]["version"] and listed[n]["description"] for n in BUILTINS)


@pytest.mark.parametrize("spec", [
    {"name": "regex", "args": {"pattern": "x+", "ignore_case": True}},
    {"name": "regex", "pattern": "x+", "ignore_case": True},
])
def test_spec_forms_build_the_same_evaluator(spec: dict) -> None:
    ev = build(spec)
    assert evaluator_spec(ev) == {"name": "regex", "version": "1", "args": {
        "pattern": "x+", "ignore_case": True, "must_match": True, "full_match": False,
        "threshold": None}}


def test_replay_from_recorded_spec_gives_identical_results() -> None:
    evaluators = [Groundedness(min_overlap=0.5, threshold=0.7), build("pii_leak"),
                  build({"name": "contains", "value": ["refund"], "as": "mentions_refund"}),
                  build({"name": "json_validation", "schema": {"type": "object"}})]
    recorded = json.loads(json.dumps([evaluator_spec(e) for e in evaluators]))
    replayed = [build(s) for s in recorded]
    assert [evaluator_spec(e) for e in replayed] == recorded
    fields = {"response": "A refund of $20 goes to ann@example.com within 5 days.",
              "context": ["Refunds of $20 are sent within 5 days."]}
    for a, b in zip(evaluators, replayed):
        assert a.evaluate(**fields) == b.evaluate(**fields)
    assert replayed[2].label == "mentions_refund"


def test_a_spec_from_another_version_is_refused() -> None:
    with pytest.raises(ConfigError, match="version 0"):
        build({"name": "exact_match", "version": "0", "args": {}})


@pytest.mark.parametrize("spec,message", [
    ("no_such_evaluator", "unknown evaluator 'no_such_evaluator'"),
    ({"name": "regex", "args": {"pattern": "("}}, "evaluator 'regex': invalid pattern"),
    ({"name": "regex", "args": {"patern": "x"}}, "evaluator 'regex': bad arguments"),
    ({"name": "groundedness", "backend": "magic"}, "evaluator 'groundedness': unknown backend"),
    ({"name": "latency_budget", "max_ms": -5}, "evaluator 'latency_budget': max_ms"),
    ({"name": "exact_match", "threshold": 3}, "evaluator 'exact_match': threshold"),
    ({"name": "regex", "args": {"pattern": "x"}, "ignore_case": True}, "not both"),
    ({"name": "json_validation", "schema": {"type": "nonsense"}}, "not a valid JSON Schema"),
    ({"args": {}}, "needs a 'name'"),
])
def test_bad_specs_raise_config_error_naming_the_evaluator(spec, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        build(spec)


@pytest.mark.parametrize("name,args,fields,missing", [
    ("groundedness", {}, {"response": "x"}, ["context"]),
    ("context_relevance", {}, {"context": ["a"], "query": "  "}, ["query"]),
    ("tool_selection_accuracy", {}, {"tool_calls": []}, ["expected_tool"]),
    ("answer_similarity", {"backend": "lexical"}, {"response": "x"}, ["expected_answer"]),
    ("cost_budget", {"max_usd": 1}, {"cost": None}, ["cost"]),
    ("json_validation", {}, {}, ["response"]),
])
def test_missing_fields_give_error_results(name, args, fields, missing) -> None:
    res = build({"name": name, "args": args}).evaluate(**fields)
    assert res.error and res.details["missing_fields"] == missing
    assert res.evaluator == name and not res.passed


def _row(**kw) -> Row:
    base = {"id": "r1", "input": [{"role": "user", "content": "What is the refund window?"}],
            "context": [{"text": "Refunds are accepted within 30 days."}],
            "expected_answer": "30 days", "policy_labels": ["must_refuse"]}
    base.update(kw)
    return Row.model_validate(base)


def test_evaluate_row_maps_row_and_output_to_fields() -> None:
    seen: dict = {}

    class Spy(BaseEvaluator):
        name, version = "spy", "1"

        def score(self, fields):
            seen.update(fields)
            return self.result(1.0)

    out = RowOutput(row_id="r1", output="Within 30 days.", latency_ms=12.5, cost=0.001,
                    usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
                    tool_calls=[ToolCall(name="lookup", arguments={"q": "refund"})])
    res = evaluate_row(Spy(), _row(), out, tools=[{"name": "lookup"}])
    assert res.score == 1.0
    assert seen["response"] == "Within 30 days." and seen["query"] == "What is the refund window?"
    assert seen["context"] == ["Refunds are accepted within 30 days."]
    assert seen["expected_answer"] == "30 days" and seen["policy_labels"] == ["must_refuse"]
    assert seen["latency_ms"] == 12.5 and seen["cost"] == 0.001
    assert seen["usage"]["total_tokens"] == 7
    assert seen["tool_calls"][0].name == "lookup" and seen["tools"] == [{"name": "lookup"}]
    # The target's own context wins over the row's when it reports one.
    out2 = out.model_copy(update={"context": [ContextDoc(text="Other doc.")]})
    evaluate_row(Spy(), _row(), out2)
    assert seen["context"] == ["Other doc."]


def test_exceptions_and_target_errors_become_error_results() -> None:
    class Broken(BaseEvaluator):
        name, version = "broken", "2"

        def score(self, fields):
            raise RuntimeError("boom")

    res = evaluate_row(Broken(), _row(), RowOutput(row_id="r1", output="x"))
    assert res.error == "evaluator failed: RuntimeError: boom" and res.version == "2"
    failed = RowOutput(row_id="r1", error="timed out", error_kind="timeout")
    res = evaluate_row(build("exact_match"), _row(), failed)
    assert res.error and res.details == {"target_error": True, "error_kind": "timeout"}


def test_evaluate_rows_batches_and_keys_by_label() -> None:
    rows = [_row(id=f"r{i}", expected_answer=f"{i} days") for i in range(600)]
    outs = [RowOutput(row_id=f"r{i}", output=f"Within {i} days.") if i != 7 else
            RowOutput(row_id="r7", error="500", error_kind="http_5xx") for i in range(600)]
    evs = [build("contains"), build({"name": "contains", "value": "within", "as": "within"}),
           Groundedness(), build("refusal")]
    results = evaluate_rows(evs, zip(rows, outs), chunk_size=256)
    assert len(results) == 600
    assert set(results[0]) == {"contains", "within", "groundedness", "refusal"}
    assert results[3]["contains"].passed and results[3]["within"].passed
    assert results[3]["groundedness"].score == 0.0  # "3 days" is not in the context
    assert results[30]["groundedness"].score == 1.0
    assert not results[3]["refusal"].passed  # labelled must_refuse, but answered
    assert all(r.error for r in results[7].values())
    with pytest.raises(ConfigError, match="share the label contains"):
        evaluate_rows([build("contains"), build("contains")], [])


def test_register_records_arguments_of_user_evaluators() -> None:
    @register("test_length_limit")
    class LengthLimit(BaseEvaluator):
        requires = ("response",)

        def __init__(self, *, max_chars: int = 100, threshold: float | None = None):
            super().__init__(threshold=threshold)
            self.max_chars = max_chars

        def score(self, fields) -> EvalResult:
            return self.result(float(len(fields["response"]) <= self.max_chars))

    ev = build({"name": "test_length_limit", "max_chars": 3})
    assert evaluator_spec(ev)["args"] == {"max_chars": 3, "threshold": None}
    assert not ev.evaluate(response="four").passed
    with pytest.raises(ValueError, match="already registered"):
        register("test_length_limit")(type("Other", (BaseEvaluator,), {}))
