"""Claims in an answer, and the deterministic (lexical) check of one claim against a context.

A claim is a sentence or bullet of the answer that states something: questions and
pleasantries ("Let me know if...") are not claims. The lexical check is strict about the facts a
hallucination usually gets wrong — numbers, quoted text and names must appear in the context —
and loose about wording: most of the claim's content words must appear in one passage (a context
sentence and its neighbour), and a "not" on one side only is a mismatch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sluice.evals.text import (
    content_tokens, entities, is_negation, numbers, quoted, split_sentences, words,
)

_FILLER = re.compile(
    r"^(?:let me know|i hope|hope this|feel free|happy to help|glad to help|please (?:let|feel|"
    r"contact|reach)|thanks?\b|thank you|here(?:'s| is| are) (?:what|the|a|some)\b[^.]*:$|"
    r"in summary:?$|good luck|is there anything else)", re.I)
_LEAD_IN = re.compile(r"^(?:according to|based on|as stated in|per) (?:the |our )?"
                      r"(?:context|documents?|sources?|information|policy|docs?)[^,]*,\s*", re.I)


def extract_claims(response: str) -> list[str]:
    """The checkable statements of an answer, each one sentence."""
    out = []
    for sentence in split_sentences(response):
        s = _LEAD_IN.sub("", sentence).strip()
        if not s or s.endswith("?") or _FILLER.match(s):
            continue
        if not content_tokens(s) and not numbers(s):
            continue
        out.append(s)
    return out


@dataclass
class Passage:
    text: str
    tokens: frozenset[str]
    negated: bool
    pair: bool = False  # two neighbouring sentences joined


@dataclass
class ContextIndex:
    """A context prepared once per row: passages, and every token, number and entity in it."""

    passages: list[Passage] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    lowered: str = ""

    @classmethod
    def build(cls, docs: list[str]) -> "ContextIndex":
        idx = cls(lowered=" ".join(" ".join(docs).lower().split()))
        for doc in docs:
            sentences = split_sentences(doc)
            idx.numbers |= numbers(doc)
            toks = [content_tokens(s) for s in sentences]
            neg = [any(is_negation(w) for w in words(s)) for s in sentences]
            for i, s in enumerate(sentences):
                idx.tokens |= toks[i]
                idx.passages.append(Passage(s, toks[i], neg[i]))
                if i + 1 < len(sentences):  # a claim may join two neighbouring sentences
                    idx.passages.append(Passage(f"{s} {sentences[i + 1]}", toks[i] | toks[i + 1],
                                                neg[i] or neg[i + 1], pair=True))
        return idx


@dataclass
class ClaimCheck:
    claim: str
    supported: bool
    support: float  # share of the claim's content words found in the best passage
    evidence: str
    missing: dict[str, list[str]]

    def as_dict(self) -> dict:
        d = {"claim": self.claim, "supported": self.supported, "support": round(self.support, 4),
             "evidence": self.evidence[:300]}
        if any(self.missing.values()):
            d["missing"] = {k: v for k, v in self.missing.items() if v}
        return d


def missing_facts(claim: str, ctx: ContextIndex) -> dict[str, list[str]]:
    """Numbers, quoted strings and names in the claim that the context never mentions."""
    return {
        "numbers": sorted(numbers(claim) - ctx.numbers),
        "quotes": [q for q in quoted(claim) if " ".join(q.lower().split()) not in ctx.lowered],
        "names": sorted(entities(claim) - ctx.tokens),
    }


def best_passage(tokens: frozenset[str], ctx: ContextIndex) -> tuple[float, Passage | None]:
    best, best_p = 0.0, None
    for p in ctx.passages:
        if not p.tokens:
            continue
        cover = len(tokens & p.tokens) / len(tokens)
        # Prefer the shorter passage on ties, so the evidence shown is a sentence, not a pair.
        shorter = best_p is not None and len(p.text) < len(best_p.text)
        if cover > best or (cover == best and shorter):
            best, best_p = cover, p
    return best, best_p


def negated(text: str) -> bool:
    return any(is_negation(w) for w in words(text))


def check_lexical(claim: str, ctx: ContextIndex, min_overlap: float) -> ClaimCheck:
    missing = missing_facts(claim, ctx)
    tokens = content_tokens(claim)
    if not tokens:  # a bare number or quote: the fact checks decide alone
        return ClaimCheck(claim, not any(missing.values()), 1.0, "", missing)
    cover, passage = best_passage(tokens, ctx)
    claim_negated = negated(claim)
    polarity_ok = passage is None or passage.negated == claim_negated
    if not polarity_ok:
        missing["negation"] = ["claim negates" if claim_negated else "context negates"]
    supported = cover >= min_overlap and polarity_ok and not any(missing.values())
    return ClaimCheck(claim, supported, cover, passage.text if passage else "", missing)
