"""Evaluators: named, versioned scorers of one row's output.

    from sluice.evals import Groundedness
    r = Groundedness().evaluate(response=answer, context=context)
    r.score, r.passed, r.reason, r.details

Build from config with ``build("groundedness")`` or ``build({"name": "regex", "pattern": ...})``;
record what was built with ``evaluator_spec(ev)``; score dataset rows with ``evaluate_rows``.
"""

from sluice.evals.base import FIELDS, BaseEvaluator, Evaluator, safe_evaluate
from sluice.evals.builtins import (
    AnswerSimilarity, Contains, ContextRelevance, CostBudget, ExactMatch, Groundedness,
    JsonValidation, LatencyBudget, LLMJudge, PiiLeak, Refusal, Regex, TaskCompletion,
    ToolSelectionAccuracy,
)
from sluice.evals.registry import (
    build, evaluate_row, evaluate_rows, evaluator_spec, label_of, list_evaluators, register,
    row_fields,
)
from sluice.evals.result import EvalResult

__all__ = [
    "FIELDS", "AnswerSimilarity", "BaseEvaluator", "Contains", "ContextRelevance", "CostBudget",
    "EvalResult", "Evaluator", "ExactMatch", "Groundedness", "JsonValidation", "LLMJudge",
    "LatencyBudget", "PiiLeak", "Refusal", "Regex", "TaskCompletion", "ToolSelectionAccuracy",
    "build", "evaluate_row", "evaluate_rows", "evaluator_spec", "label_of", "list_evaluators",
    "register", "row_fields", "safe_evaluate",
]
