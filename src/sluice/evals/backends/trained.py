"""The trained groundedness verifier: a logistic model over the claim features of ``verifier``.

The weights (``data/groundedness-verifier.json``, a few kilobytes) were fitted by
``training/groundedness/train.py`` on public labelled data (training/groundedness/SOURCES.md);
at run time only numpy and the MiniLM ONNX embedder are needed, nothing is downloaded.

A claim's probability of being supported is ``sigmoid(w · standardised(features) + b)``; an
answer is as grounded as its weakest claim.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sluice.evals.claims import extract_claims
from sluice.evals.verifier import FEATURES, ClaimEvidence, Context, claim_features, \
    texts_to_embed

WEIGHTS_PATH = Path(__file__).parent / "data" / "groundedness-verifier.json"


@dataclass
class VerifierModel:
    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    meta: dict

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> "VerifierModel":
        raw = json.loads(path.read_text())
        if tuple(raw["features"]) != FEATURES:
            raise ValueError(f"{path}: trained on other features than this code computes; "
                             "retrain with training/groundedness/train.py")
        return cls(np.array(raw["mean"]), np.array(raw["scale"]), np.array(raw["weights"]),
                   float(raw["bias"]), raw.get("meta", {}))

    def to_json(self) -> dict:
        return {"features": list(FEATURES), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "weights": self.weights.tolist(),
                "bias": self.bias, "meta": self.meta}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(supported) for each row of a (claims, features) matrix."""
        z = ((x - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


_model: VerifierModel | None = None
_lock = threading.Lock()


def load_model() -> VerifierModel:
    """The shipped model, loaded once per process."""
    global _model
    with _lock:
        if _model is None:
            _model = VerifierModel.load()
        return _model


Embed = Callable[[Sequence[str]], np.ndarray]


def analyse(response: str, docs: Sequence[str], query: str | None,
            embed: Embed | None) -> tuple[list[str], list[ClaimEvidence]]:
    """The claims of an answer and the evidence features of each."""
    claims = extract_claims(response or "")
    if not claims:
        return [], []
    ctx = Context.build(docs, query)
    return claims, [claim_features(c, query, ctx, embed) for c in claims]


def batch_texts(rows: Sequence[tuple[str, Sequence[str], str | None]]) -> list[str]:
    """Every text the rows will embed, so one batched embedder pass can fill the cache."""
    out: list[str] = []
    for response, docs, query in rows:
        claims = extract_claims(response or "")
        if claims and docs:
            out += texts_to_embed(claims, query, Context.build(docs, query))
    return out
