"""Every deterministic built-in against its labelled examples (tests/evals/data/labelled.json).

These evaluators are rules, so each labelled example must come out exactly as labelled; the
printed accuracy is what docs/evaluators.md reports.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sluice.evals import build

CASES = json.loads((Path(__file__).parent / "data" / "labelled.json").read_text())


@pytest.mark.parametrize("name", sorted(CASES))
def test_labelled_examples(name: str) -> None:
    wrong = []
    for i, case in enumerate(CASES[name]):
        ev = build({"name": name, "args": case.get("args", {})})
        res = ev.evaluate(**case["fields"])
        assert res.error is None, (name, i, res.error)
        assert res.evaluator == name and res.version == ev.version
        if "passed" in case and res.passed != case["passed"]:
            wrong.append((i, "passed", res.passed, res.reason))
        if "score" in case and res.score != pytest.approx(case["score"], abs=1e-3):
            wrong.append((i, "score", res.score, res.reason))
        if "kind" in case and case["kind"] not in {f["kind"] for f in res.details["findings"]}:
            wrong.append((i, "kind", res.details["findings"], res.reason))
    n = len(CASES[name])
    print(f"{name}: {n - len({w[0] for w in wrong})}/{n} labelled examples right")
    assert not wrong, wrong
