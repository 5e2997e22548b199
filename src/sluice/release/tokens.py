"""Offline token counting for context budgets.

toktok-rs counts with the real OpenAI encodings (identical to tiktoken) without downloading
anything; models of other families are counted with cl100k_base, which is close enough for a
budget. Without toktok the estimate is one token per four characters.
"""

from __future__ import annotations

from typing import Sequence

try:
    import toktok
except ImportError:  # pragma: no cover - toktok-rs is a declared dependency
    toktok = None

O200K_PREFIXES = ("gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o")


def encoding_for(model: str | None) -> str:
    name = (model or "").lower().rsplit("/", 1)[-1]
    return "o200k_base" if name.startswith(O200K_PREFIXES) else "cl100k_base"


def count_tokens(texts: Sequence[str], model: str | None = None) -> list[int]:
    """Tokens in each text, in order."""
    if not texts:
        return []
    if toktok is None:
        return [estimate_tokens(t) for t in texts]
    return toktok.batch_count(list(texts), encoding_for(model), threads=1)


def estimate_tokens(text: str) -> int:
    return (len(text) + 3) // 4
