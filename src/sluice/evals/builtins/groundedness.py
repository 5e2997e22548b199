"""Groundedness: the share of the answer's claims that the retrieved context supports.

Score = supported claims ÷ claims (an answer without checkable claims scores 1). Backends:

- ``verifier`` (default): a logistic model trained on public labelled data
  (training/groundedness/) over length-free evidence features of each claim — words, names and
  numbers found, verbatim match, whether the sentence answering the question holds the claim,
  negation, MiniLM similarity — uses ``query`` (the question) when the row has one. A claim is
  supported when its names, numbers, quotes and polarity are in the context and either
  P(supported) ≥ 0.5 or (``lexical_support``) ≥ 80 % of its words stand in one passage, mostly
  in the same order.
- ``crossencoder``: a small cross-encoder trained by us (MiniLM, first layers, int8 ONNX shipped
  in the package) reads each claim with its question and the context sentences most like it and
  gives P(supported); with ``require_facts`` (default) the claim's names, numbers, quotes and
  polarity must also be in the context.
- ``lexical`` (deterministic, ~0.1 ms a row): numbers, quoted text and names must
  appear in the context; ``min_overlap`` of the claim's content words must appear in one passage;
  negation must agree. Misses paraphrase (false "unsupported") and subtle swaps of common words.
- ``embedding``: a claim is supported when its cosine to the closest context sentence reaches
  ``min_similarity`` (MiniLM offline) and, with ``require_facts``, its numbers/quotes/names appear.
- ``nli``: a local NLI cross-encoder (``nli_model`` folder); supported when P(entailment) against
  some context document reaches ``entailment_threshold``.
- ``llm_judge``: one judge call per row with the numbered claims (``judge`` settings).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sluice.errors import ConfigError
from sluice.evals.backends.embedding import batch_embedder, cosine_matrix
from sluice.evals.backends.llm_judge import JudgeError, judge_from_args
from sluice.evals.backends.trained import analyse, batch_texts, load_model
from sluice.evals.base import BaseEvaluator, context_list
from sluice.evals.claims import ClaimCheck, ContextIndex, check_lexical, extract_claims, \
    missing_facts, negated
from sluice.evals.registry import register
from sluice.evals.text import split_sentences
from sluice.evals.verifier import FEATURES, Context, claim_features


FACT_KEYS = ("names", "numbers", "quotes", "negation")
LEXICAL_COVER, LEXICAL_ORDER = 0.8, 0.5  # chosen on HaluEval dev and the demo corpus


def _query(fields: dict[str, Any]) -> str | None:
    q = fields.get("query")
    return q if isinstance(q, str) and q.strip() else None


_MISSING_LABELS = {"numbers": "number", "quotes": "quote", "names": "name", "negation": "negation",
                   "words": "not in the context", "relation": "not where the context answers",
                   "meaning": "not what the context says",
                   "contradiction": "contradiction"}


def _missing_text(missing: dict[str, list[str]]) -> str:
    """' (missing name: Frances; number: 12)' — the facts the context does not give."""
    parts = [f"{_MISSING_LABELS.get(k, k)}: {', '.join(v[:4])}" for k, v in missing.items() if v]
    return f" ({'; '.join(parts)})" if parts else ""

BACKENDS = ("verifier", "crossencoder", "lexical", "embedding", "nli", "llm_judge")

JUDGE_SYSTEM = (
    "You check whether claims are supported by a context. A claim is supported only if the "
    "context states it or it follows directly from the context. Reply with JSON only: "
    '{"verdicts": [{"claim": <number>, "supported": true|false, "reason": "<short>"}]}')


@register("groundedness")
class Groundedness(BaseEvaluator):
    """Share of the response's claims supported by the context (claim-level)."""

    version = "2"
    requires = ("response", "context")
    default_threshold = 0.8

    def __init__(self, *, backend: str = "verifier", threshold: float | None = None,
                 min_overlap: float = 0.6, min_similarity: float = 0.6,
                 require_facts: bool = True, embedder: str = "auto",
                 nli_model: str | None = None, entailment_threshold: float = 0.5,
                 judge: dict[str, Any] | None = None, lexical_support: bool = True,
                 min_support: float | None = None, combine: bool = True):
        super().__init__(threshold=threshold)
        if backend not in BACKENDS:
            raise ConfigError(f"evaluator 'groundedness': unknown backend '{backend}'; "
                              f"use one of {', '.join(BACKENDS)}")
        self.backend = backend
        self.min_overlap = min_overlap
        self.min_similarity = min_similarity
        self.require_facts = require_facts
        self.embedder_name = embedder
        self.entailment_threshold = entailment_threshold
        self.lexical_support = lexical_support
        self._nli_cache: dict[tuple[str, str], dict[str, float]] = {}
        if backend == "nli":
            if not nli_model:
                raise ConfigError("evaluator 'groundedness': the nli backend needs nli_model "
                                  "(a local folder)")
            from sluice.evals.backends.nli import load_nli

            self.nli = load_nli(nli_model)
        if backend == "llm_judge":
            self.judge = judge_from_args(judge)
            self.concurrency = 4
        if backend == "crossencoder":
            from sluice.evals.backends.crossenc import load_combined, load_crossenc

            try:
                self.crossenc = load_crossenc()
            except RuntimeError as exc:
                raise ConfigError(f"evaluator 'groundedness': {exc}") from exc
            self.combined = load_combined() if combine else None
            self.min_support = 0.5 if min_support is None else min_support
        if backend == "verifier":
            if embedder not in ("auto", "minilm"):
                raise ConfigError("evaluator 'groundedness': the verifier backend was trained on "
                                  "MiniLM similarities; use embedder minilm (or auto)")
            self.embedder_name = "minilm"
            self.model = load_model()

    # --- batch preparation -----------------------------------------------------------------

    def prepare(self, batch: Sequence[dict[str, Any]]) -> None:
        if self.backend == "crossencoder":  # one batched model pass fills the model's cache
            items = [(c, _query(f), context_list(f["context"])) for f in batch
                     if f.get("response") and f.get("context")
                     for c in extract_claims(f["response"])]
            self.crossenc.predict(items)
        elif self.backend == "verifier":
            rows = [(f["response"], context_list(f["context"]), _query(f)) for f in batch
                    if f.get("response") and f.get("context")]
            batch_embedder(self.embedder_name).embed(batch_texts(rows))
        elif self.backend == "embedding":
            texts: list[str] = []
            for f in batch:
                if f.get("response") and f.get("context"):
                    texts += extract_claims(f["response"])
                    texts += [s for d in context_list(f["context"]) for s in split_sentences(d)]
            batch_embedder(self.embedder_name).embed(texts)  # fills the embedding cache
        elif self.backend == "nli":
            pairs = [(d, c) for f in batch if f.get("response") and f.get("context")
                     for c in extract_claims(f["response"]) for d in context_list(f["context"])]
            self._nli_cache = dict(zip(pairs, self.nli.predict(pairs)))

    # --- scoring -----------------------------------------------------------------------------

    def score(self, fields: dict[str, Any]) -> Any:
        docs = [d for d in context_list(fields["context"]) if d.strip()]
        if not docs:
            return self.error("missing required field: context", {"missing_fields": ["context"]})
        claims = extract_claims(fields["response"] or "")
        if not claims:
            return self.result(1.0, "no factual claims to check",
                               {"claims": [], "backend": self.backend})
        if self.backend == "llm_judge":
            try:
                checks = self._judge(claims, docs)
            except JudgeError as exc:
                return self.error(f"judge failed: {exc}")
        elif self.backend == "verifier":
            checks = self._verify(fields["response"], docs, _query(fields))
        elif self.backend == "crossencoder":
            checks = self._crossencoder(claims, docs, _query(fields))
        else:
            ctx = ContextIndex.build(docs)
            if self.backend == "lexical":
                checks = [check_lexical(c, ctx, self.min_overlap) for c in claims]
            elif self.backend == "embedding":
                checks = self._embedding(claims, ctx)
            else:
                checks = self._nli(claims, docs, ctx)
        supported = sum(c.supported for c in checks)
        unsupported = [c.claim for c in checks if not c.supported]
        reason = f"{supported} of {len(checks)} claims supported"
        if unsupported:
            reason += "; unsupported: " + "; ".join(
                f"'{c.claim[:80]}'{_missing_text(c.missing)}"
                for c in [c for c in checks if not c.supported][:3])
        return self.result(supported / len(checks), reason,
                           {"claims": [c.as_dict() for c in checks], "backend": self.backend,
                            "supported": supported, "total": len(checks)})

    def _verify(self, response: str, docs: list[str], query: str | None) -> list[ClaimCheck]:
        claims, evidence = analyse(response, docs, query, batch_embedder(self.embedder_name).embed)
        probs = self.model.predict(np.array([e.features for e in evidence]))
        out = []
        for claim, ev, p in zip(claims, evidence, probs):
            missing = dict(ev.missing)
            # Invented names, numbers or quotes, or a flipped "not", fail a claim whatever the
            # model says; a claim whose words stand in one passage in the same order is supported
            # whatever the model says (the model, trained on HaluEval, distrusts any answer that
            # is not a copy of the context, and would fail most faithful paraphrases).
            facts_ok = not (self.require_facts and any(missing.get(k) for k in FACT_KEYS))
            f = dict(zip(FEATURES, ev.features))
            lexical = self.lexical_support and f["cov_best"] >= LEXICAL_COVER \
                and f["order_kept"] >= LEXICAL_ORDER
            ok = bool(facts_ok and (lexical or p >= 0.5))
            if not ok and not any(missing.values()):
                missing.update(ev.unsupported)
            out.append(ClaimCheck(claim, ok, float(p), ev.evidence, missing))
        return out

    def _crossencoder(self, claims: list[str], docs: list[str],
                      query: str | None) -> list[ClaimCheck]:
        from sluice.evals.backends.crossenc import select_sentences

        probs = self.crossenc.predict([(c, query, docs) for c in claims])
        ctx = Context.build(docs, query)
        evidence = [claim_features(c, query, ctx, None) for c in claims]
        if self.combined is not None:
            probs = self.combined.predict(np.array([e.features for e in evidence]), probs,
                                          query is not None)
        out = []
        for claim, ev, p in zip(claims, evidence, probs):
            missing = dict(ev.missing) if self.require_facts else {}
            ok = bool(p >= self.min_support and not any(missing.values()))
            top = select_sentences(claim, query, docs, top=1)
            if not ok and not any(missing.values()):
                missing.update(ev.unsupported
                               or {"meaning": [f"closest: '{top[0][:80]}'" if top else ""]})
            out.append(ClaimCheck(claim, ok, float(p), top[0] if top else ev.evidence, missing))
        return out

    def _facts(self, claim: str, ctx: ContextIndex) -> dict[str, list[str]]:
        return missing_facts(claim, ctx) if self.require_facts else {}

    def _embedding(self, claims: list[str], ctx: ContextIndex) -> list[ClaimCheck]:
        passages = [p for p in ctx.passages if not p.pair]
        sentences = [p.text for p in passages] or [""]
        emb = batch_embedder(self.embedder_name)
        sims = cosine_matrix(emb.embed(claims), emb.embed(sentences))
        out = []
        for i, claim in enumerate(claims):
            j = int(sims[i].argmax())
            sim = float(sims[i, j])
            missing = self._facts(claim, ctx)
            # Embeddings barely see "not": with require_facts, polarity must agree as well.
            if self.require_facts and passages and passages[j].negated != negated(claim):
                missing["negation"] = ["claim negates" if negated(claim) else "context negates"]
            ok = sim >= self.min_similarity and not any(missing.values())
            out.append(ClaimCheck(claim, ok, max(0.0, sim), sentences[j], missing))
        return out

    def _nli(self, claims: list[str], docs: list[str], ctx: ContextIndex) -> list[ClaimCheck]:
        pairs = [(d, c) for c in claims for d in docs]
        todo = [p for p in pairs if p not in self._nli_cache]
        if todo:
            self._nli_cache.update(zip(todo, self.nli.predict(todo)))
        out = []
        for claim in claims:
            probs = [(self._nli_cache[(d, claim)], d) for d in docs]
            best, doc = max(probs, key=lambda x: x[0]["entailment"])
            contradiction = max(p["contradiction"] for p, _ in probs)
            missing = self._facts(claim, ctx)
            ok = best["entailment"] >= self.entailment_threshold and not any(missing.values())
            check = ClaimCheck(claim, ok, best["entailment"], doc, missing)
            check.missing["contradiction"] = [f"{contradiction:.3f}"] if contradiction >= 0.5 \
                else []
            out.append(check)
        return out

    def _judge(self, claims: list[str], docs: list[str]) -> list[ClaimCheck]:
        user = "Context:\n" + "\n".join(f"[{i + 1}] {d}" for i, d in enumerate(docs))
        user += "\n\nClaims:\n" + "\n".join(f"{i + 1}. {c}" for i, c in enumerate(claims))
        verdicts = self.judge.ask_json(JUDGE_SYSTEM, user).get("verdicts")
        if not isinstance(verdicts, list):
            raise JudgeError("judge reply has no 'verdicts' list")
        by_number: dict[int, dict] = {}
        for v in verdicts:
            if isinstance(v, dict) and isinstance(v.get("claim"), int):
                by_number[v["claim"]] = v
        if len(by_number) < len(claims):
            raise JudgeError(f"judge gave verdicts for {len(by_number)} of {len(claims)} claims")
        out = []
        for i, claim in enumerate(claims):
            v = by_number[i + 1]
            ok = v.get("supported") is True or str(v.get("supported")).lower() in ("true", "yes")
            out.append(ClaimCheck(claim, ok, float(ok), str(v.get("reason", "")), {}))
        return out
