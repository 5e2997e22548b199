"""Nearest-neighbour search over normalised embeddings, in process, bounded.

Entries are grouped in **shelves**, one per cache key (deployment + release digest + tenant +
sampling params + conversation prefix): a lookup only ever compares vectors of one shelf, which is
what keeps canary answers away from stable users. A shelf is a ring buffer of at most
``max_entries`` vectors (the oldest is overwritten); at most ``max_shelves`` shelves are kept,
least recently used evicted first. Expired entries are skipped and overwritten in time.

Search is exact cosine (a dot product of unit vectors). Up to ``EXACT_UP_TO`` entries it is plain
brute force over the float32 matrix; above that, a SimHash prefilter (384 random-hyperplane sign
bits, Hamming distance with ``numpy.bitwise_count``) keeps the candidates whose Hamming distance
is within 4.5 standard deviations of what the similarity threshold implies, and the exact dot
product picks among them. For random hyperplanes a bit differs with probability angle/π, so a true
match above the threshold is missed with probability below 1e-5; the prefilter reads 48 bytes per
entry instead of 1,536, which is what makes 100k entries fit a few milliseconds (see
bench/semantic_cache_bench.py).
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

EXACT_UP_TO = 4096
HASH_BITS = 384
MAX_CANDIDATES = 512
_WORDS = HASH_BITS // 64


@dataclass(frozen=True, slots=True)
class Match:
    value: Any
    similarity: float


class _Shelf:
    def __init__(self, dim: int, max_entries: int):
        self.cap = max_entries
        self.size = 0
        self.next = 0  # ring position of the next write
        self.vectors = np.zeros((min(64, max_entries), dim), dtype=np.float32)
        self.bits = np.zeros((_WORDS, self.vectors.shape[0]), dtype=np.uint64)
        self.expires = np.zeros(self.vectors.shape[0], dtype=np.float64)
        self.values: list[Any] = [None] * self.vectors.shape[0]

    def _grow(self) -> None:
        new = min(self.cap, self.vectors.shape[0] * 2)
        self.vectors = np.resize(self.vectors, (new, self.vectors.shape[1]))
        bits = np.zeros((_WORDS, new), dtype=np.uint64)
        bits[:, :self.bits.shape[1]] = self.bits
        self.bits = bits
        self.expires = np.resize(self.expires, new)
        self.values.extend([None] * (new - len(self.values)))

    def add(self, vector: np.ndarray, bits: np.ndarray, value: Any, expires: float) -> None:
        if self.next >= self.vectors.shape[0] and self.vectors.shape[0] < self.cap:
            self._grow()
        i = self.next
        self.vectors[i] = vector
        self.bits[:, i] = bits
        self.expires[i] = expires
        self.values[i] = value
        self.next = (i + 1) % self.cap
        self.size = min(self.size + 1, self.cap)


class SemanticIndex:
    def __init__(self, dim: int = 384, *, max_entries: int = 10_000, max_shelves: int = 256, seed: int = 20261125):
        self.dim = dim
        self.max_entries = max_entries
        self.max_shelves = max_shelves
        rng = np.random.default_rng(seed)
        self._planes = rng.standard_normal((dim, HASH_BITS)).astype(np.float32)
        self._shelves: OrderedDict[str, _Shelf] = OrderedDict()
        self._lock = threading.Lock()

    def signature(self, vector: np.ndarray) -> np.ndarray:
        """The SimHash of a vector: ``HASH_BITS`` sign bits as ``_WORDS`` uint64 words."""
        return np.packbits(vector @ self._planes > 0).view(np.uint64)

    def add(self, shelf: str, vector: np.ndarray, value: Any, ttl_s: float, now: float | None = None) -> None:
        vector = np.asarray(vector, dtype=np.float32).reshape(self.dim)
        bits = self.signature(vector)
        expires = (time.time() if now is None else now) + ttl_s
        with self._lock:
            s = self._shelves.get(shelf)
            if s is None:
                s = self._shelves[shelf] = _Shelf(self.dim, self.max_entries)
                while len(self._shelves) > self.max_shelves:
                    self._shelves.popitem(last=False)
            self._shelves.move_to_end(shelf)
            s.add(vector, bits, value, expires)

    def search(self, shelf: str, vector: np.ndarray, threshold: float, now: float | None = None) -> Match | None:
        """The most similar live entry of ``shelf`` with similarity ≥ ``threshold``, or None."""
        vector = np.asarray(vector, dtype=np.float32).reshape(self.dim)
        now = time.time() if now is None else now
        with self._lock:
            s = self._shelves.get(shelf)
            if s is None or s.size == 0:
                return None
            self._shelves.move_to_end(shelf)
            n = s.size
            if n <= EXACT_UP_TO:
                rows = np.arange(n)
            else:
                rows = self._candidates(s, n, self.signature(vector), threshold)
                if rows.size == 0:
                    return None
            scores = s.vectors[rows] @ vector if n > EXACT_UP_TO else s.vectors[:n] @ vector
            scores[s.expires[rows] <= now] = -2.0
            best = int(np.argmax(scores))
            if scores[best] < threshold:
                return None
            return Match(s.values[int(rows[best])], float(scores[best]))

    @staticmethod
    def _candidates(s: _Shelf, n: int, sig: np.ndarray, threshold: float) -> np.ndarray:
        theta = math.acos(max(-1.0, min(1.0, threshold)))
        p = theta / math.pi
        limit = HASH_BITS * p + 4.5 * math.sqrt(HASH_BITS * p * (1 - p)) + 1
        word = np.empty(n, dtype=np.uint64)
        dist = np.empty(n, dtype=np.uint16)
        ones = np.empty(n, dtype=np.uint8)
        np.bitwise_xor(s.bits[0, :n], sig[0], out=word)
        np.bitwise_count(word, out=ones)
        dist[:] = ones
        for j in range(1, _WORDS):
            np.bitwise_xor(s.bits[j, :n], sig[j], out=word)
            np.bitwise_count(word, out=ones)
            dist += ones
        rows = np.flatnonzero(dist <= limit)
        if rows.size > MAX_CANDIDATES:
            rows = rows[np.argpartition(dist[rows], MAX_CANDIDATES)[:MAX_CANDIDATES]]
        return rows

    def __len__(self) -> int:
        with self._lock:
            return sum(s.size for s in self._shelves.values())

    @property
    def shelves(self) -> int:
        return len(self._shelves)
