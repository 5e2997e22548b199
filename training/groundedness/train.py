"""Fit the groundedness verifier (a logistic model over claim features) and report its accuracy.

Run (about 5 minutes on 2 CPU cores, numpy + scipy only; MiniLM int8 ONNX from the installed
package embeds the texts):

    python training/groundedness/data.py SRC_DIR /tmp/groundedness-sets
    python training/groundedness/train.py /tmp/groundedness-sets [--out PATH]

Training sets: halueval_train and summedits_train (see data.py). Labels are per answer; a
grounded answer's claims are all supported, a hallucinated answer has at least one unsupported
claim, which one unknown: first every claim of a hallucinated answer is a negative, then only its
weakest claim under the first model is (multiple-instance learning, one refinement round).
Each set weighs the same, and each class within a set, so neither dominates the fit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from sluice.evals.backends.embedding import batch_embedder
from sluice.evals.backends.trained import WEIGHTS_PATH, VerifierModel, analyse, batch_texts
from sluice.evals.verifier import FEATURES

TRAIN = ("halueval_train", "summedits_train")
REPORT = ("halueval_train", "summedits_train", "halueval_dev", "halueval_heldout",
          "summedits_news", "summedits_scitldr")
L2 = 1.0


def load(sets_dir: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (sets_dir / f"{name}.jsonl").read_text().splitlines()]


def featurise(rows: list[dict], cache: Path) -> list[np.ndarray]:
    """One (claims, features) matrix per row (cached on disk by the rows' content)."""
    key = hashlib.sha256(json.dumps([rows, FEATURES]).encode()).hexdigest()[:16]
    path = cache / f"{key}.npz"
    if path.is_file():
        data = np.load(path)
        return [data[f"r{i}"] for i in range(len(rows))]
    emb = batch_embedder("minilm")
    out = []
    for start in range(0, len(rows), 64):
        chunk = rows[start:start + 64]
        emb.embed(batch_texts([(r["response"], r["context"], r["query"]) for r in chunk]))
        for r in chunk:
            _, ev = analyse(r["response"], r["context"], r["query"], emb.embed)
            out.append(np.array([e.features for e in ev]) if ev
                       else np.zeros((0, len(FEATURES))))
    np.savez(path, **{f"r{i}": m for i, m in enumerate(out)})
    return out


def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> VerifierModel:
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-6] = 1.0
    xs = (x - mean) / scale

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        z = xs @ theta[:-1] + theta[-1]
        p = 1 / (1 + np.exp(-np.clip(z, -30, 30)))
        eps = 1e-12
        nll = -(w * (y * np.log(p + eps) + (1 - y) * np.log(1 - p + eps))).sum()
        g = w * (p - y)
        grad = np.append(xs.T @ g, g.sum())
        grad[:-1] += L2 * theta[:-1]
        return nll + 0.5 * L2 * (theta[:-1] ** 2).sum(), grad

    res = minimize(loss, np.zeros(x.shape[1] + 1), jac=True, method="L-BFGS-B")
    return VerifierModel(mean, scale, res.x[:-1], float(res.x[-1]), {})


def row_scores(model: VerifierModel, mats: list[np.ndarray]) -> np.ndarray:
    return np.array([model.predict(m).min() if len(m) else 1.0 for m in mats])


def balanced(scores: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float, float]:
    kept = float((scores[labels == 1] >= threshold).mean())
    caught = float((scores[labels == 0] < threshold).mean())
    return (kept + caught) / 2, kept, caught


def training_matrix(sets: dict, model: VerifierModel | None):
    xs, ys, ws = [], [], []
    for name in TRAIN:
        rows, mats = sets[name]
        labels = np.array([r["label"] for r in rows])
        for cls in (0, 1):
            n_cls = (labels == cls).sum()
            for r, m in zip(rows, mats):
                if r["label"] != cls or not len(m):
                    continue
                if cls == 0 and model is not None and len(m) > 1:
                    m = m[[int(np.argmin(model.predict(m)))]]
                xs.append(m)
                ys.append(np.full(len(m), cls))
                ws.append(np.full(len(m), 1.0 / (n_cls * len(m))))
    return np.concatenate(xs), np.concatenate(ys).astype(float), np.concatenate(ws) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sets_dir", type=Path)
    ap.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/groundedness-features"))
    args = ap.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    t = time.time()
    sets = {}
    for name in REPORT:
        rows = load(args.sets_dir, name)
        sets[name] = (rows, featurise(rows, args.cache))
        print(f"features {name}: {len(rows)} rows ({time.time() - t:.0f} s)", file=sys.stderr)
    model = fit(*training_matrix(sets, None))
    model = fit(*training_matrix(sets, model))
    # The threshold that balances both classes on the training sets becomes the 0.5 point.
    train_scores = np.concatenate([row_scores(model, sets[n][1]) for n in TRAIN])
    train_labels = np.concatenate([[r["label"] for r in sets[n][0]] for n in TRAIN])
    grid = np.linspace(0.05, 0.95, 91)
    best = max(grid, key=lambda th: np.mean([balanced(row_scores(model, sets[n][1]),
                                                      np.array([r["label"] for r in sets[n][0]]),
                                                      th)[0] for n in TRAIN]))
    model.bias -= float(np.log(best / (1 - best)))
    report = {}
    for name in REPORT:
        rows, mats = sets[name]
        bal, kept, caught = balanced(row_scores(model, mats), np.array([r["label"] for r in rows]),
                                     0.5)
        report[name] = {"balanced_accuracy": round(bal, 4), "kept": round(kept, 4),
                        "caught": round(caught, 4), "rows": len(rows)}
        print(f"{name:20s} balanced {bal:.3f}  kept {kept:.3f}  caught {caught:.3f}")
    del train_scores, train_labels
    model.meta = {"trained_on": list(TRAIN), "l2": L2, "report": report,
                  "script": "training/groundedness/train.py"}
    for f, w in sorted(zip(FEATURES, model.weights), key=lambda x: -abs(x[1])):
        print(f"  {f:28s} {w:+.3f}", file=sys.stderr)
    args.out.write_text(json.dumps(model.to_json(), indent=1) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
