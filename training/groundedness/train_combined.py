"""Fit the combiner: a logistic model over the cross-encoder's logit and the verifier's lexical
features (no MiniLM similarities, so nothing but the cross-encoder runs a model).

    .venv/bin/python training/groundedness/train_combined.py /tmp/groundedness-sets [--fit-on ...]

Writes ``src/sluice/evals/backends/data/groundedness-combined.json`` and prints balanced
accuracy per set (an answer is grounded when its weakest claim is; names/numbers the context
lacks fail a claim, as the evaluator's require_facts does).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from train import balanced, fit, load, training_matrix  # noqa: E402

from sluice.evals.backends.crossenc import load_crossenc  # noqa: E402
from sluice.evals.backends.trained import Logistic  # noqa: E402
from sluice.evals.claims import extract_claims  # noqa: E402
from sluice.evals.verifier import FEATURES, Context, claim_features  # noqa: E402

OUT = (Path(__file__).resolve().parents[2] / "src" / "sluice" / "evals" / "backends" / "data"
       / "groundedness-combined.json")
SIMS = ("sim_best", "sim_answer_sentence", "sim_question")
COLUMNS = tuple(f for f in FEATURES if f not in SIMS) + ("crossenc_logit",)
KEEP = [FEATURES.index(f) for f in FEATURES if f not in SIMS]
FACTS = [COLUMNS.index("name_missing"), COLUMNS.index("number_missing")]
REPORT = ("halueval_train", "halueval_augmented", "summedits_train", "halueval_heldout",
          "halueval_dev", "halueval_heldout_augmented", "summedits_news", "summedits_scitldr")


def featurise(rows: list[dict]) -> list[np.ndarray]:
    model = load_crossenc()
    items, spans = [], []
    for r in rows:
        claims = extract_claims(r["response"])
        spans.append((len(items), len(claims)))
        items += [(c, r["query"], r["context"]) for c in claims]
    probs = np.clip(model.predict(items), 1e-6, 1 - 1e-6)
    logits = np.log(probs / (1 - probs))
    out = []
    for r, (start, n) in zip(rows, spans):
        if not n:
            out.append(np.zeros((0, len(COLUMNS))))
            continue
        ctx = Context.build(r["context"], r["query"])
        feats = [claim_features(c, r["query"], ctx, None).features[KEEP]
                 for c in extract_claims(r["response"])]
        out.append(np.column_stack([np.array(feats), logits[start:start + n]]))
    return out


def scores(model: Logistic, mats: list[np.ndarray]) -> np.ndarray:
    return np.array([np.where(m[:, FACTS].sum(axis=1) > 0, 0.0, model.predict(m)).min()
                     if len(m) else 1.0 for m in mats])


def matrix(sets: dict, names: tuple[str, ...]):
    """``train.training_matrix`` with the weakest claim chosen by the cross-encoder (last column)."""
    return training_matrix(sets, names, lambda m: int(np.argmin(m[:, -1])))


def calibrate(model: Logistic, sets: dict, names: tuple[str, ...], min_kept: float) -> Logistic:
    """Move the cut to the threshold with the best mean balanced accuracy on the training sets
    (keeping at least ``min_kept`` of their grounded answers), then back to 0.5 via the bias."""
    def value(th: float) -> float:
        res = [balanced(scores(model, sets[n][1]), np.array([r["label"] for r in sets[n][0]]),
                        th) for n in names]
        if min(r[1] for r in res) < min_kept:
            return -1.0 - th
        return float(np.mean([r[0] for r in res]))

    best = max(np.linspace(0.05, 0.95, 91), key=value)
    model.bias -= float(np.log(best / (1 - best)))
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sets_dir", type=Path)
    ap.add_argument("--qa", default="halueval_train,halueval_augmented")
    ap.add_argument("--summary", default="summedits_train,halueval_augmented_noq")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    t = time.time()
    sets = {}
    qa_names, sum_names = tuple(args.qa.split(",")), tuple(args.summary.split(","))
    for name in dict.fromkeys(REPORT + qa_names + sum_names):
        rows = load(args.sets_dir, name)
        sets[name] = (rows, featurise(rows))
        print(f"{name}: {len(rows)} rows ({time.time() - t:.0f} s)", file=sys.stderr)
    qa = calibrate(fit(*matrix(sets, qa_names), []), sets, qa_names, 0.0)
    # A gate must not fail most faithful summaries: keep at least 65 % on the training domains.
    summary = calibrate(fit(*matrix(sets, sum_names), []), sets, ("summedits_train",), 0.65)
    report = {}
    for name in REPORT:
        rows, mats = sets[name]
        model = qa if rows[0]["query"] else summary
        labels = np.array([r["label"] for r in rows])
        s = scores(model, mats)
        bal, kept, caught = balanced(s, labels, 0.5)
        ce = np.array([m[:, -1].min() if len(m) else 10.0 for m in mats])
        bal_ce, kept_ce, _ = balanced(ce, labels, 0.0)
        report[name] = {"balanced_accuracy": round(bal, 4), "kept": round(kept, 4),
                        "caught": round(caught, 4), "crossenc_alone": round(bal_ce, 4)}
        print(f"{name:28s} combined {bal:.3f} (kept {kept:.2f} caught {caught:.2f})  "
              f"crossenc alone {bal_ce:.3f} (kept {kept_ce:.2f})")
    for kind, m in (("qa", qa), ("summary", summary)):
        top = sorted(zip(COLUMNS, m.weights), key=lambda x: -abs(x[1]))[:8]
        print(kind + ": " + ", ".join(f"{f} {w:+.2f}" for f, w in top), file=sys.stderr)
    raw = {"columns": list(COLUMNS), "qa": qa.to_json(), "summary": summary.to_json(),
           "meta": {"qa_trained_on": list(qa_names), "summary_trained_on": list(sum_names),
                    "report": report, "script": "training/groundedness/train_combined.py"}}
    args.out.write_text(json.dumps(raw, indent=1) + "\n")


if __name__ == "__main__":
    main()
