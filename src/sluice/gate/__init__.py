"""The offline gate: candidate run vs baseline run on the same dataset version, judged by a policy.

``run_gate`` = ``compare`` (measure, pure) + ``assess`` (judge, pure) + ``build_result``; the
reports in ``sluice.gate.report`` render a ``GateResult``.
"""

from sluice.gate.assess import Check, Verdict, assess
from sluice.gate.compare import EvaluatorSpec, RunInfo, compare
from sluice.gate.measures import ALL, Measurements
from sluice.gate.policy import GatePolicy, default_policy, load_policy, parse_policy
from sluice.gate.result import GateResult, build_result, run_gate

__all__ = ["ALL", "Check", "EvaluatorSpec", "GatePolicy", "GateResult", "Measurements", "RunInfo", "Verdict",
           "assess", "build_result", "compare", "default_policy", "load_policy", "parse_policy", "run_gate"]
