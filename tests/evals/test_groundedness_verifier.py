"""The trained groundedness verifier (the default backend) on labelled public data and examples.

Bounds sit a little under what was measured (bench/results/groundedness.md, docs/evaluators.md),
so a change that makes the verifier less accurate fails here. Sets: HaluEval held-out questions
(never trained on), their rewrites (right answers as full sentences, wrong spans of the context
as short answers — answers of every length), SummEdits news (a domain never trained on), and the
HaluEval dev set from ../shared when it is there (CI has it; a worktree may not).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from groundedness_sets import halueval_dev, load_set
from sluice.errors import ConfigError
from sluice.evals import Groundedness, build, evaluator_spec
from sluice.evals.backends.trained import VerifierModel, WEIGHTS_PATH, load_model
from sluice.evals.verifier import FEATURES



TRAINED_KINDS = ("sentence", "wrong-span", "swapped", "number", "negated")


def _load(name: str, limit: int | None = None) -> list[dict]:
    rows = load_set(name)
    if name.endswith("_augmented"):  # restated answers are reported by the benchmark only
        rows = [r for r in rows if r["id"].split("-", 1)[1] in TRAINED_KINDS]
    return rows[:limit]


def _balanced(rows: list[dict]) -> tuple[float, float, float]:
    res = Groundedness().evaluate_batch([{"response": r["response"], "context": r["context"],
                                          "query": r["query"]} for r in rows])
    assert all(r.error is None for r in res)
    pos = [r.passed for r, x in zip(res, rows) if x["label"] == 1]
    neg = [not r.passed for r, x in zip(res, rows) if x["label"] == 0]
    kept, caught = sum(pos) / len(pos), sum(neg) / len(neg)
    return (kept + caught) / 2, kept, caught


@pytest.mark.parametrize("name,limit,bound,min_kept", [
    ("halueval_heldout", None, 0.87, 0.93),            # measured 0.895 (kept 0.960)
    ("halueval_heldout_augmented", None, 0.58, 0.93),  # measured 0.618 (kept 0.968)
    ("summedits_news", 400, 0.60, 0.78),              # measured 0.633 (kept 0.836)
])
def test_verifier_on_held_out_labelled_sets(name: str, limit: int | None, bound: float,
                                            min_kept: float) -> None:
    bal, kept, caught = _balanced(_load(name, limit))
    print(f"groundedness[verifier] {name}: balanced {bal:.3f} (kept {kept:.3f}, "
          f"caught {caught:.3f})")
    assert bal >= bound and kept >= min_kept


def test_verifier_on_halueval_dev() -> None:
    rows = halueval_dev()
    bal, kept, caught = _balanced(rows)
    print(f"groundedness[verifier] halueval_dev: balanced {bal:.3f} (kept {kept:.3f}, "
          f"caught {caught:.3f})")
    assert bal >= 0.89  # measured 0.914 (kept 0.984, caught 0.844)


CTX = ["In September 2004, massive rains from the remnants of Hurricane Frances and Hurricane "
       "Ivan caused the Swannanoa to flood, causing major damage to Asheville. Ivan formed in "
       "early September, and reached Category 5 strength on the Saffir-Simpson Hurricane Scale."]
Q = "What Category 5 hurricane caused the Swannanoa River to flood?"


@pytest.mark.parametrize("answer,grounded", [
    ("Hurricane Ivan", True),
    ("Hurricane Ivan caused the Swannanoa to flood.", True),
    ("It was Hurricane Katrina.", False),
    ("Hurricane Ivan caused the Swannanoa to flood in September 2005.", False),
])
def test_verifier_judges_evidence_not_length(answer: str, grounded: bool) -> None:
    r = Groundedness().evaluate(response=answer, context=CTX, query=Q)
    assert r.passed is grounded, r.reason


def test_reason_names_the_unsupported_claim_and_the_missing_fact() -> None:
    r = Groundedness().evaluate(response="It was Hurricane Katrina.", context=CTX, query=Q)
    assert not r.passed
    assert "'It was Hurricane Katrina.'" in r.reason and "katrina" in r.reason.lower()
    claim = r.details["claims"][0]
    assert claim["missing"]["names"] == ["katrina"] and claim["support"] < 0.5
    r = Groundedness().evaluate(
        response="Returns are accepted within 30 days. Refunds are paid in Bitcoin.",
        context=["Returns are accepted within 30 days of purchase. Refunds go to the card used."])
    assert [c["supported"] for c in r.details["claims"]] == [True, False]
    assert r.score == 0.5 and "Bitcoin" in r.reason and "name: bitcoin" in r.reason


def test_verifier_is_the_default_and_its_spec_replays() -> None:
    ev = build("groundedness")
    assert ev.backend == "verifier" and ev.version == "2"
    spec = evaluator_spec(ev)
    assert spec["args"]["backend"] == "verifier"
    assert build(spec).version == "2"
    with pytest.raises(ConfigError, match="MiniLM"):
        Groundedness(embedder="hashing")


def test_shipped_model_matches_the_features(tmp_path: Path) -> None:
    raw = json.loads(WEIGHTS_PATH.read_text())
    assert raw["features"] == list(FEATURES)
    model = load_model()
    assert model.predict(np.zeros((0, len(FEATURES)))).shape == (0,)
    raw["features"] = raw["features"][::-1]
    bad = tmp_path / "w.json"
    bad.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="retrain"):
        VerifierModel.load(bad)
