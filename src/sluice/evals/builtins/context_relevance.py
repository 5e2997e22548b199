"""Context relevance: how many retrieved documents bear on the query (precision-style).

Each document gets a relevance score and a relevant/not verdict; score = relevant ÷ retrieved.
Details also give rank-aware average precision (Ragas' context precision: Σ precision@k · v_k ÷
relevant), so a release that ranks the right document lower is visible. Backends:

- ``lexical`` (default): share of the query's content words found in the document, relevant at
  ``min_doc_score`` (0.5). Misses synonyms; short queries make it coarse.
- ``embedding``: cosine(query, document) with MiniLM, relevant at ``min_doc_score`` (0.35 by
  default for this backend: query–passage cosines run lower than sentence–sentence ones).
- ``llm_judge``: one judge call listing the documents.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sluice.errors import ConfigError
from sluice.evals.backends.embedding import batch_embedder, cosine_matrix
from sluice.evals.backends.llm_judge import JudgeError, judge_from_args
from sluice.evals.base import BaseEvaluator, context_list
from sluice.evals.registry import register
from sluice.evals.text import content_tokens, stem, words

DOC_THRESHOLDS = {"lexical": 0.5, "embedding": 0.35, "llm_judge": 0.5}

JUDGE_SYSTEM = (
    "You judge whether retrieved documents are relevant to a user's question: a document is "
    "relevant if it contains information useful to answer it. Reply with JSON only: "
    '{"documents": [{"doc": <number>, "relevant": true|false}]}')


@register("context_relevance")
class ContextRelevance(BaseEvaluator):
    """Share of retrieved documents relevant to the query; per-document scores in details."""

    version = "1"
    requires = ("query", "context")
    default_threshold = 0.5

    def __init__(self, *, backend: str = "lexical", min_doc_score: float | None = None,
                 embedder: str = "auto", judge: dict[str, Any] | None = None,
                 threshold: float | None = None):
        super().__init__(threshold=threshold)
        if backend not in DOC_THRESHOLDS:
            raise ConfigError(f"evaluator 'context_relevance': unknown backend '{backend}'; "
                              f"use one of {', '.join(DOC_THRESHOLDS)}")
        self.backend = backend
        self.min_doc_score = DOC_THRESHOLDS[backend] if min_doc_score is None else min_doc_score
        self.embedder_name = embedder
        if backend == "llm_judge":
            self.judge = judge_from_args(judge)
            self.concurrency = 4

    def prepare(self, batch: Sequence[dict[str, Any]]) -> None:
        if self.backend == "embedding":
            texts = [t for f in batch if f.get("query") for t in
                     [f["query"], *context_list(f.get("context"))]]
            batch_embedder(self.embedder_name).embed(texts)

    def score(self, fields: dict[str, Any]) -> Any:
        query, docs = str(fields["query"]), context_list(fields["context"])
        if self.backend == "lexical":
            scores = self._lexical(query, docs)
        elif self.backend == "embedding":
            emb = batch_embedder(self.embedder_name)
            sims = cosine_matrix(emb.embed([query]), emb.embed(docs))[0]
            scores = [max(0.0, float(s)) for s in sims]
        else:
            try:
                scores = self._judge(query, docs)
            except JudgeError as exc:
                return self.error(f"judge failed: {exc}")
        relevant = [s >= self.min_doc_score for s in scores]
        n_rel = sum(relevant)
        hits, ap = 0, 0.0
        for k, rel in enumerate(relevant, start=1):
            if rel:
                hits += 1
                ap += hits / k
        details = {"backend": self.backend,
                   "documents": [{"rank": i + 1, "score": round(s, 4), "relevant": r}
                                 for i, (s, r) in enumerate(zip(scores, relevant))],
                   "average_precision": round(ap / n_rel, 4) if n_rel else 0.0}
        return self.result(n_rel / len(docs), f"{n_rel} of {len(docs)} documents relevant",
                           details)

    @staticmethod
    def _lexical(query: str, docs: list[str]) -> list[float]:
        q = content_tokens(query)
        if not q:  # a query of stop words only: fall back to every word
            q = {stem(w.lower()) for w in words(query)}
        if not q:
            return [0.0 for _ in docs]
        return [len(q & content_tokens(d)) / len(q) for d in docs]

    def _judge(self, query: str, docs: list[str]) -> list[float]:
        user = f"Question: {query}\n\nDocuments:\n" + "\n".join(
            f"[{i + 1}] {d}" for i, d in enumerate(docs))
        listed = self.judge.ask_json(JUDGE_SYSTEM, user).get("documents")
        if not isinstance(listed, list):
            raise JudgeError("judge reply has no 'documents' list")
        by_doc = {v["doc"]: v for v in listed if isinstance(v, dict) and isinstance(v.get("doc"),
                                                                                   int)}
        if any(i + 1 not in by_doc for i in range(len(docs))):
            raise JudgeError(f"judge rated {len(by_doc)} of {len(docs)} documents")
        return [1.0 if str(by_doc[i + 1].get("relevant")).lower() in ("true", "yes", "1")
                else 0.0 for i in range(len(docs))]
