"""The gate's outcome in one serialisable model: the verdict, every check, and every measurement
the reports draw on. Its JSON form (``schema: sluice.gate.v1``) is a stable, documented contract
(docs/gate.md, "JSON report").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import Field

from sluice.dataset.row import Row
from sluice.gate.assess import Check, Verdict, assess
from sluice.gate.compare import RunInfo, compare
from sluice.gate.measures import Measurements
from sluice.gate.policy import GatePolicy
from sluice.release.model import Release
from sluice.runner.record import RowRecord

SCHEMA = "sluice.gate.v1"


class GateResult(Measurements):
    schema_: Literal["sluice.gate.v1"] = Field(default=SCHEMA, alias="schema")
    verdict: Literal["pass", "fail", "inconclusive"]
    exit_code: int
    reasons: list[str]
    checks: list[Check]
    policy_digest: str

    model_config = {"populate_by_name": True}

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def summary(self) -> dict[str, Any]:
        """The compact form kept in the gate record: enough for lists and dashboards."""
        counts: dict[str, int] = {}
        for c in self.checks:
            counts[c.status] = counts.get(c.status, 0) + 1
        return {"verdict": self.verdict, "exit_code": self.exit_code, "reasons": self.reasons,
                "checks": counts, "cohorts": self.cohorts, "evaluators": self.evaluators,
                "candidate": self.candidate.ref, "baseline": self.baseline.ref,
                "regressed_rows": self.regressed_row_count, "warnings": self.warnings}


def build_result(policy: GatePolicy, measurements: Measurements, verdict: Verdict) -> GateResult:
    return GateResult(**measurements.model_dump(), verdict=verdict.verdict, exit_code=verdict.exit_code,
                      reasons=verdict.reasons, checks=verdict.checks, policy_digest=policy.digest)


def run_gate(policy: GatePolicy, rows: list[Row], candidate: Mapping[str, RowRecord],
             baseline: Mapping[str, RowRecord], candidate_info: RunInfo, baseline_info: RunInfo,
             candidate_release: Release | None = None, baseline_release: Release | None = None) -> GateResult:
    """compare, assess, and bundle: what ``sluice gate`` calls once both runs are complete."""
    ms = compare(policy, rows, candidate, baseline, candidate_info, baseline_info, candidate_release,
                 baseline_release)
    return build_result(policy, ms, assess(policy, ms))
