"""The groundedness cross-encoder: a small MiniLM model trained by us, run as int8 ONNX.

For each claim of an answer the model reads one short input (``MAX_TOKENS`` word pieces):

    [CLS] question: <question> claim: <claim> [SEP] <the context sentences most like it> [SEP]

and gives P(the context supports the claim). The context sentences are chosen lexically
(``select_sentences``: the sentences sharing the most of the claim's and the question's content
words, rarer words weighing more, best first), so a long document costs no more than a short one.

The weights (``data/groundedness-crossenc.onnx``, int8) were fine-tuned from the first layers of
all-MiniLM-L6-v2 on public labelled data by ``training/groundedness/train_crossenc.py``
(sources and licences in training/groundedness/SOURCES.md). Run time needs onnxruntime, the
``tokenizers`` package and the vendored WordPiece vocabulary only; nothing is downloaded.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sluice.evals.text import content_tokens, numbers, split_sentences

MODEL_PATH = Path(__file__).parent / "data" / "groundedness-crossenc.onnx"
VOCAB_PATH = Path(__file__).parent / "data" / "minilm-vocab.txt"
MAX_TOKENS = 128
TOP_SENTENCES = 4
QUESTION_WEIGHT = 0.5


def _keys(text: str) -> set[str]:
    return set(content_tokens(text)) | numbers(text)


def select_sentences(claim: str, query: str | None, docs: Sequence[str],
                     top: int = TOP_SENTENCES) -> list[str]:
    """The context sentences that share most of the claim's (and the question's) words, best first.

    A word counts log(1 + sentences / sentences holding it), so a rare name outweighs a common
    word; question words count ``QUESTION_WEIGHT`` as much as the claim's. Ties keep document
    order; sentences sharing nothing come last (in document order), so a short context is read
    whole.
    """
    sentences = [s for d in docs for s in split_sentences(d) if s.strip()]
    if not sentences:
        return []
    keys = [_keys(s) for s in sentences]
    df: dict[str, int] = {}
    for k in keys:
        for w in k:
            df[w] = df.get(w, 0) + 1
    n = len(sentences)
    claim_k = _keys(claim)
    query_k = _keys(query) - claim_k if query else set()

    def weight(w: str) -> float:
        return math.log(1.0 + n / df[w])

    scores = [sum(weight(w) for w in k & claim_k)
              + QUESTION_WEIGHT * sum(weight(w) for w in k & query_k) for k in keys]
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    return [sentences[i] for i in order[:top]]


def first_segment(claim: str, query: str | None) -> str:
    return f"question: {query.strip()} claim: {claim}" if query else f"claim: {claim}"


def model_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import tokenizers  # noqa: F401
    except ImportError:
        return False
    return MODEL_PATH.is_file() and VOCAB_PATH.is_file()


class CrossEncoder:
    """P(supported) for (claim, question, context) triples, batched, on onnxruntime."""

    def __init__(self, model_path: str | Path | None = None, *, threads: int | None = None,
                 batch_size: int = 32):
        try:
            import onnxruntime as ort
            from tokenizers import BertWordPieceTokenizer
        except ImportError as exc:  # pragma: no cover - both are runtime dependencies
            raise RuntimeError("the groundedness cross-encoder needs onnxruntime and tokenizers "
                               f"({exc}); use backend: lexical without them") from exc
        model_path = MODEL_PATH if model_path is None else model_path
        if not Path(model_path).is_file():
            raise RuntimeError(f"groundedness cross-encoder weights not found at {model_path}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or min(4, os.cpu_count() or 1)
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(model_path), opts,
                                            providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}
        self.tokenizer = make_tokenizer()
        self.batch_size = batch_size
        self._cache: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def predict(self, items: Sequence[tuple[str, str | None, Sequence[str]]]) -> np.ndarray:
        """P(supported) for each (claim, query, docs); repeated inputs are computed once."""
        keyed = [encode_pair(c, q, d) for c, q, d in items]
        out = np.zeros(len(items))
        todo: dict[tuple[str, str], list[int]] = {}
        for i, key in enumerate(keyed):
            with self._lock:
                hit = self._cache.get(key)
            if hit is None:
                todo.setdefault(key, []).append(i)
            else:
                out[i] = hit
        pending = list(todo)
        for start in range(0, len(pending), self.batch_size):
            chunk = pending[start:start + self.batch_size]
            probs = self._run(chunk)
            with self._lock:
                if len(self._cache) > 50_000:
                    self._cache.clear()
                for key, p in zip(chunk, probs):
                    self._cache[key] = float(p)
                    for i in todo[key]:
                        out[i] = p
        return out

    def _run(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        encs = self.tokenizer.encode_batch(pairs)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        feed = {"input_ids": ids,
                "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64)}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.array([e.type_ids for e in encs], dtype=np.int64)
        logits = self.session.run(None, feed)[0].reshape(len(pairs), -1)
        z = logits[:, -1] - (logits[:, 0] if logits.shape[1] > 1 else 0.0)
        return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def encode_pair(claim: str, query: str | None, docs: Sequence[str]) -> tuple[str, str]:
    """The (first, second) text segments the model reads for one claim."""
    return first_segment(claim, query), " ".join(select_sentences(claim, query, docs))


def make_tokenizer():
    from tokenizers import BertWordPieceTokenizer

    tok = BertWordPieceTokenizer(str(VOCAB_PATH), lowercase=True)
    tok.enable_truncation(MAX_TOKENS, strategy="longest_first")
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


_model: CrossEncoder | None = None
_model_lock = threading.Lock()


def load_crossenc() -> CrossEncoder:
    """The shipped model, loaded once per process."""
    global _model
    with _model_lock:
        if _model is None:
            _model = CrossEncoder()
        return _model


COMBINED_PATH = Path(__file__).parent / "data" / "groundedness-combined.json"


class Combined:
    """P(supported) from the cross-encoder's logit and the verifier's lexical claim features.

    Two logistic models (``training/groundedness/train_combined.py``): ``qa`` for claims
    answering a question, ``summary`` for the rest. The MiniLM similarity features of the
    verifier are left out, so the cross-encoder is the only model that runs.
    """

    def __init__(self, path: Path = COMBINED_PATH):
        import json

        from sluice.evals.backends.trained import Logistic
        from sluice.evals.verifier import FEATURES

        raw = json.loads(path.read_text())
        self.columns = tuple(raw["columns"])
        if self.columns[:-1] != tuple(f for f in FEATURES if not f.startswith("sim_")) \
                or self.columns[-1] != "crossenc_logit":
            raise ValueError(f"{path}: trained on other features than this code computes; "
                             "retrain with training/groundedness/train_combined.py")
        self.keep = [FEATURES.index(f) for f in self.columns[:-1]]
        self.qa = Logistic.from_json(raw["qa"])
        self.summary = Logistic.from_json(raw["summary"])
        self.meta = raw.get("meta", {})

    def predict(self, features: np.ndarray, probs: np.ndarray, has_query: bool) -> np.ndarray:
        """P(supported) per claim from (claims, FEATURES) and the cross-encoder's P."""
        p = np.clip(probs, 1e-6, 1 - 1e-6)
        x = np.column_stack([features[:, self.keep], np.log(p / (1 - p))])
        return (self.qa if has_query else self.summary).predict(x)


_combined: Combined | None = None


def load_combined() -> Combined:
    global _combined
    with _model_lock:
        if _combined is None:
            _combined = Combined()
        return _combined
