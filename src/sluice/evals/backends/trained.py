"""The trained groundedness verifier: a logistic model over the claim features of ``verifier``.

The weights (``data/groundedness-verifier.json``, a few kilobytes) were fitted by
``training/groundedness/train.py`` on public labelled data (training/groundedness/SOURCES.md);
at run time only numpy and the MiniLM ONNX embedder are needed, nothing is downloaded.

A claim's probability of being supported is ``sigmoid(w · standardised(features) + b)``, with
one set of weights for answers to a question (``qa``) and one for text without a question
(``summary``: summaries, RAG answers whose row has no user question), since the evidence that
matters differs: with a question, whether the claim is what the context says *about the
question*; without one, whether its names, numbers, polarity and wording are in the context.
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


HAS_QUESTION = FEATURES.index("has_question")


@dataclass
class Logistic:
    """Logistic regression over the features and products of chosen feature pairs."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    bias: float
    pairs: list[tuple[int, int]]  # products that let evidence interact (verbatim × relation...)

    def expand(self, x: np.ndarray) -> np.ndarray:
        if not self.pairs:
            return x
        return np.concatenate([x, np.stack([x[:, i] * x[:, j] for i, j in self.pairs], 1)], 1)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(supported) for each row of a (claims, features) matrix."""
        z = ((self.expand(x) - self.mean) / self.scale) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))

    def to_json(self) -> dict:
        return {"mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "weights": self.weights.tolist(), "bias": self.bias,
                "pairs": [[FEATURES[i], FEATURES[j]] for i, j in self.pairs]}

    @classmethod
    def from_json(cls, raw: dict) -> "Logistic":
        pairs = [(FEATURES.index(a), FEATURES.index(b)) for a, b in raw.get("pairs", [])]
        return cls(np.array(raw["mean"], dtype=np.float64),
                   np.array(raw["scale"], dtype=np.float64),
                   np.array(raw["weights"], dtype=np.float64), float(raw["bias"]), pairs)


@dataclass
class VerifierModel:
    qa: Logistic
    summary: Logistic
    meta: dict

    @classmethod
    def load(cls, path: Path = WEIGHTS_PATH) -> "VerifierModel":
        raw = json.loads(path.read_text())
        if tuple(raw["features"]) != FEATURES:
            raise ValueError(f"{path}: trained on other features than this code computes; "
                             "retrain with training/groundedness/train.py")
        return cls(Logistic.from_json(raw["qa"]), Logistic.from_json(raw["summary"]),
                   raw.get("meta", {}))

    def to_json(self) -> dict:
        return {"features": list(FEATURES), "qa": self.qa.to_json(),
                "summary": self.summary.to_json(), "meta": self.meta}

    def predict(self, x: np.ndarray) -> np.ndarray:
        """P(supported) per claim, each by the model for its kind (with or without a question)."""
        if len(x) == 0:
            return np.zeros(0)
        with_q = x[:, HAS_QUESTION] > 0.5
        out = np.empty(len(x))
        if with_q.any():
            out[with_q] = self.qa.predict(x[with_q])
        if (~with_q).any():
            out[~with_q] = self.summary.predict(x[~with_q])
        return out


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
