"""Full gate reports are kept in the store (migration 1400) and read back whole, on both backends."""

from __future__ import annotations

from sluice.dataset.row import Row
from sluice.evals.result import EvalResult
from sluice.gate import default_policy, run_gate
from sluice.gate.compare import EvaluatorSpec, RunInfo
from sluice.gate.reports_store import get_gate_report, put_gate_report
from sluice.runner.record import RowOutput, RowRecord, Usage


def _records(rows, fail_cohort=None):
    out = {}
    for r in rows:
        ok = r.cohort != fail_cohort
        out[r.id] = RowRecord(output=RowOutput(row_id=r.id, output=f"answer {r.id}" if ok else "no idea",
                                               latency_ms=100.0, usage=Usage(prompt_tokens=10, completion_tokens=5,
                                                                             total_tokens=15), cost=0.001),
                              evals={"exact": EvalResult(score=float(ok), passed=ok, evaluator="exact", version="1",
                                                         reason="matches" if ok else "differs")}, cohort=r.cohort)
    return out


def _info(side):
    return RunInfo(ref=f"app@{side}", digest=f"sha256:{side}", dataset_name="contract", dataset_version="sha256:d",
                   evaluators=[EvaluatorSpec(name="exact", version="1")])


def test_report_round_trip(store):
    rows = [Row(id=f"{c}-{i}", input=[{"role": "user", "content": f"q {i}"}], expected_answer=f"a {i}", cohort=c)
            for c in ("alpha", "beta") for i in range(30)]
    result = run_gate(default_policy(), rows, _records(rows, "beta"), _records(rows), _info("cand"), _info("base"))
    assert result.verdict == "fail" and result.regressed_rows
    put_gate_report(store, "gate-0123456789ab", result)
    back = get_gate_report(store, "gate-0123456789ab")
    assert back is not None and back.to_json_dict() == result.to_json_dict()
    assert get_gate_report(store, "gate-missing") is None
