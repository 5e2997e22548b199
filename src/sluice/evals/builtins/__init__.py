"""Built-in evaluators, one module each; importing this package registers them."""

from sluice.evals.builtins.answer_similarity import AnswerSimilarity
from sluice.evals.builtins.budgets import CostBudget, LatencyBudget
from sluice.evals.builtins.context_relevance import ContextRelevance
from sluice.evals.builtins.groundedness import Groundedness
from sluice.evals.builtins.json_validation import JsonValidation
from sluice.evals.builtins.llm_judge import LLMJudge
from sluice.evals.builtins.matching import Contains, ExactMatch, Regex
from sluice.evals.builtins.pii_leak import PiiLeak
from sluice.evals.builtins.refusal import Refusal
from sluice.evals.builtins.task_completion import TaskCompletion
from sluice.evals.builtins.tool_selection import ToolSelectionAccuracy

__all__ = ["AnswerSimilarity", "Contains", "ContextRelevance", "CostBudget", "ExactMatch",
           "Groundedness", "JsonValidation", "LLMJudge", "LatencyBudget", "PiiLeak", "Refusal",
           "Regex", "TaskCompletion", "ToolSelectionAccuracy"]
