"""Answer similarity: how close the response's meaning is to the expected answer.

``embedding`` backend (default): cosine of MiniLM sentence embeddings (offline, int8 ONNX),
negative cosines clipped to 0; ``embedder: hashing`` swaps in the weaker model-free hashing
embedder. ``lexical`` backend: SQuAD-style token F1 over content words — deterministic, blind to
paraphrase. Batches embed all responses and expected answers of a chunk in one pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sluice.errors import ConfigError
from sluice.evals.backends.embedding import batch_embedder, resolve_embedder
from sluice.evals.base import BaseEvaluator
from sluice.evals.registry import register
from sluice.evals.text import token_f1

#: Default pass thresholds, chosen on tests/evals/data/answer_similarity.jsonl (24 labelled pairs;
#: see docs/evaluators.md for the accuracy each gives there).
THRESHOLDS = {"minilm": 0.6, "hashing": 0.25, "lexical": 0.3}


@register("answer_similarity")
class AnswerSimilarity(BaseEvaluator):
    """Semantic similarity of the response to the expected answer (embedding cosine)."""

    version = "1"
    requires = ("response", "expected_answer")

    def __init__(self, *, backend: str = "embedding", embedder: str = "auto",
                 threshold: float | None = None):
        if backend not in ("embedding", "lexical"):
            raise ConfigError(f"evaluator 'answer_similarity': unknown backend '{backend}'; "
                              f"use embedding or lexical")
        if embedder not in ("auto", "minilm", "hashing"):
            raise ConfigError(f"evaluator 'answer_similarity': unknown embedder '{embedder}'; "
                              f"use auto, minilm or hashing")
        if backend == "lexical":
            self.default_threshold = THRESHOLDS["lexical"]
        else:
            self.default_threshold = THRESHOLDS[resolve_embedder(embedder)]
        super().__init__(threshold=threshold)
        self.backend = backend
        self.embedder_name = embedder

    def prepare(self, batch: Sequence[dict[str, Any]]) -> None:
        if self.backend == "embedding":
            texts = [str(f[k]) for f in batch for k in ("response", "expected_answer")
                     if f.get(k)]
            batch_embedder(self.embedder_name).embed(texts)

    def score(self, fields: dict[str, Any]) -> Any:
        response, expected = fields["response"] or "", str(fields["expected_answer"])
        if self.backend == "lexical":
            s = token_f1(response, expected)
            return self.result(s, f"token F1 {s:.3f} against the expected answer",
                               {"backend": "lexical"})
        if not response.strip():
            return self.result(0.0, "empty response", {"backend": "embedding"})
        emb = batch_embedder(self.embedder_name)
        a, b = emb.embed([response, expected])
        cos = float(a @ b)
        return self.result(max(0.0, cos), f"cosine {cos:.3f} to the expected answer",
                           {"backend": "embedding", "model": emb.model_id,
                            "cosine": round(cos, 4)})
