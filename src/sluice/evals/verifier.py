"""Claim analysis for the trained groundedness verifier: length-free evidence features per claim.

Each claim of an answer is compared with the context (and the question, when there is one) and
described by ratios and yes/no facts only — shares of words, names and numbers found, whether the
claim sits verbatim in the context, whether the sentence that answers the question holds the
claim's new words, MiniLM similarity to the closest context sentence. No feature counts words or
characters, so a long answer is not judged by its length (HaluEval's hallucinated answers are
longer than the right ones; a length rule alone scores 0.94 there and fails on real answers).

``FEATURES`` names the columns of ``claim_features``; the trained weights (backends/trained.py)
are tied to this order, so changing it means retraining (training/groundedness/train.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from sluice.evals.claims import ContextIndex, best_passage, missing_facts, negated
from sluice.evals.text import content_tokens, entities, numbers, split_sentences, stem, words

FEATURES = (
    "cov_all",          # share of the claim's content words found anywhere in the context
    "cov_best",         # ... found in its best passage (a sentence or two neighbours)
    "cov_novel",        # share of the words the question did not give that the context has
    "novel_in_answer_sentence",  # ... found in the context sentence that answers the question
    "joint",            # best sentence (or neighbour pair) holding the question's and claim's words
    "echo",             # share of the claim's words that only repeat the question
    "no_new_words",     # the claim adds nothing to the question (1/0)
    "names_found",      # share of the claim's names found in the context
    "name_missing",     # some name is absent from the context (1/0)
    "number_missing",   # some number is absent from the context (1/0)
    "number_found",     # the claim has numbers and the context has them all (1/0)
    "verbatim",         # the claim, normalised, is a substring of the context (1/0)
    "negation_mismatch",  # "not" on one side only of the claim and its best passage (1/0)
    "order_kept",       # share of the claim's word pairs that stand near each other in context
    "sim_best",         # MiniLM cosine to the closest context sentence
    "sim_answer_sentence",  # MiniLM cosine to the sentence that answers the question
    "sim_question",     # MiniLM cosine to the question
    "wants_number_gets_none",  # "how many / when / what year" answered without a number (1/0)
    "yes_no_mismatch",  # a yes/no question answered without yes/no, or the reverse (1/0)
    "has_question",     # a question was given (1/0)
)

_YES_NO_Q = re.compile(r"^\s*(?:is|are|was|were|do|does|did|can|could|has|have|had|will|would|"
                       r"should)\b", re.I)
_NUMBER_Q = re.compile(r"\b(?:how (?:many|much|old|long|far|tall|big|large)|what year|which year|"
                       r"when|what (?:number|percentage|age))\b", re.I)
_YES_NO_A = re.compile(r"^\s*(?:yes|no)\b", re.I)
_NORM = re.compile(r"[^\w]+")
_GLUED = re.compile(r"(?<=[a-z0-9)][.!?])(?=[A-Z])")  # "...century.First for Women is..."
CANDIDATES = 3  # context sentences per claim that are embedded (bounds the MiniLM cost)


def _norm(text: str) -> str:
    return " " + " ".join(_NORM.sub(" ", text.lower()).split()) + " "


def _seq(text: str) -> list[str]:
    return [stem(w.lower()) for w in words(text)]


@dataclass
class Context:
    """A row's context prepared once: the lexical index, sentences and their word sequences."""

    index: ContextIndex
    sentences: list[str]
    sentence_tokens: list[frozenset[str]]
    near_pairs: set[tuple[str, str]]
    normalised: str
    answer_sentences: list[int] = field(default_factory=list)
    query_tokens: frozenset[str] = frozenset()

    def joint(self, novel: frozenset[str]) -> float:
        """max over sentences and neighbour pairs of (question share) × (new-word share)."""
        q = self.query_tokens
        if not q or not novel:
            return 1.0
        best = 0.0
        toks = self.sentence_tokens
        for i, t in enumerate(toks):
            for span in (t, t | toks[i + 1] if i + 1 < len(toks) else t):
                best = max(best, len(q & span) / len(q) * len(novel & span) / len(novel))
        return best

    @classmethod
    def build(cls, docs: Sequence[str], query: str | None) -> "Context":
        index = ContextIndex.build(list(docs))
        sentences = [p for d in docs for s in split_sentences(d) for p in _GLUED.split(s) if p]
        toks = [content_tokens(s) | frozenset(numbers(s)) for s in sentences]
        pairs: set[tuple[str, str]] = set()
        for s in sentences:
            seq = [w for w in _seq(s)]
            for i, w in enumerate(seq):
                for v in seq[i + 1:i + 5]:  # words within four positions count as near
                    pairs.add((w, v))
        ctx = cls(index, sentences, toks, pairs, _norm(" ".join(docs)))
        if query:
            q = content_tokens(query) | frozenset(numbers(query))
            scored = sorted(((len(q & t), -i) for i, t in enumerate(toks)), reverse=True)
            ctx.answer_sentences = [-i for n, i in scored[:1] if n > 0]
            ctx.query_tokens = q
        return ctx

    def candidates(self, claim_tokens: frozenset[str]) -> list[int]:
        """The context sentences sharing most words with a claim (the ones worth embedding)."""
        scored = sorted(((len(claim_tokens & t), -i) for i, t in enumerate(self.sentence_tokens)),
                        reverse=True)
        return [-i for _, i in scored[:CANDIDATES]]


def texts_to_embed(claims: Sequence[str], query: str | None, ctx: Context) -> list[str]:
    """Every text ``claim_features`` will ask the embedder for (to embed a batch in one pass)."""
    out = list(claims)
    if query:
        out.append(query)
    for c in claims:
        out += [ctx.sentences[i] for i in ctx.candidates(_claim_tokens(c))]
    out += [ctx.sentences[i] for i in ctx.answer_sentences]
    return out


def _claim_tokens(claim: str) -> frozenset[str]:
    return content_tokens(claim) | frozenset(numbers(claim))


@dataclass
class ClaimEvidence:
    features: np.ndarray
    evidence: str
    missing: dict[str, list[str]]  # names, numbers, quotes absent; a negation mismatch
    unsupported: dict[str, list[str]]  # words absent, or absent where the question is answered


def claim_features(claim: str, query: str | None, ctx: Context,
                   embed: Callable[[Sequence[str]], np.ndarray] | None) -> ClaimEvidence:
    """The ``FEATURES`` of one claim, the context sentence best supporting it, what is missing."""
    toks = content_tokens(claim)
    q_toks = content_tokens(query) if query else frozenset()
    novel = toks - q_toks
    idx = ctx.index
    cov_all = len(toks & idx.tokens) / len(toks) if toks else 1.0
    cov_best, passage = best_passage(toks, idx) if toks else (1.0, None)
    cov_novel = len(novel & idx.tokens) / len(novel) if novel else 1.0
    if query and ctx.answer_sentences:
        near = frozenset().union(*(ctx.sentence_tokens[i] for i in ctx.answer_sentences))
        novel_in_ans = len(novel & near) / len(novel) if novel else 1.0
    else:
        novel_in_ans = cov_best
    echo = len(toks & q_toks) / len(toks) if toks and query else 0.0
    missing = missing_facts(claim, idx)
    names = entities(claim)
    names_found = len(names & idx.tokens) / len(names) if names else 1.0
    claim_numbers = numbers(claim)
    seq = [w for w in _seq(claim) if w in toks or w in claim_numbers]
    pairs = list(zip(seq, seq[1:]))
    order_kept = sum(p in ctx.near_pairs for p in pairs) / len(pairs) if pairs else 1.0
    neg_mismatch = passage is not None and passage.negated != negated(claim)
    if neg_mismatch:
        missing["negation"] = ["claim negates" if negated(claim) else "context negates"]
    sim_best = sim_ans = sim_q = 0.0
    evidence = passage.text if passage else ""
    cands = ctx.candidates(_claim_tokens(claim))
    if embed is not None and ctx.sentences:
        texts = [claim] + [ctx.sentences[i] for i in cands]
        ans = [ctx.sentences[i] for i in ctx.answer_sentences]
        vecs = embed(texts + ans + ([query] if query else []))
        c = vecs[0]
        sims = vecs[1:len(texts)] @ c
        j = int(np.argmax(sims))
        sim_best = float(sims[j])
        if not evidence or cov_best < 0.5:
            evidence = texts[1 + j]
        if ans:
            sim_ans = float(np.max(vecs[len(texts):len(texts) + len(ans)] @ c))
        if query:
            sim_q = float(vecs[-1] @ c)
    wants_number = bool(query and _NUMBER_Q.search(query)) and not claim_numbers
    yes_no = bool(query) and bool(_YES_NO_Q.match(query or "")) != bool(_YES_NO_A.match(claim))
    joint = ctx.joint(novel | frozenset(claim_numbers)) if query else cov_best
    feats = np.array([
        cov_all, cov_best, cov_novel, novel_in_ans, joint, echo, float(bool(query) and not novel),
        names_found, float(bool(missing["names"])), float(bool(missing["numbers"])),
        float(bool(claim_numbers) and not missing["numbers"]),
        float(_norm(claim).strip() != "" and _norm(claim) in ctx.normalised),
        float(neg_mismatch), order_kept, sim_best, sim_ans, sim_q, float(wants_number),
        float(yes_no), float(bool(query)),
    ], dtype=np.float64)
    return ClaimEvidence(feats, evidence, missing, _unsupported(claim, q_toks, ctx))


def _unsupported(claim: str, q_toks: frozenset[str], ctx: Context) -> dict[str, list[str]]:
    """The claim's words the context lacks; else those the answering sentences lack."""
    seen: dict[str, str] = {}
    for w in words(claim):
        t = content_tokens(w)
        if t and not t <= q_toks:
            seen.setdefault(next(iter(t)), w)
    absent = [w for t, w in seen.items() if t not in ctx.index.tokens]
    if absent:
        return {"words": absent[:6]}
    if ctx.answer_sentences:
        near = frozenset().union(*(ctx.sentence_tokens[i] for i in ctx.answer_sentences))
        off = [w for t, w in seen.items() if t not in near]
        if off:
            return {"relation": off[:6]}
    return {}
