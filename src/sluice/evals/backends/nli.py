"""Natural-language-inference cross-encoders loaded from a local folder (never from a hub).

Two folder layouts are understood:

- ONNX: ``model.onnx`` + ``tokenizer.json`` + ``config.json`` whose ``id2label`` names the
  outputs (``entailment`` / ``contradiction`` / ``neutral``, any case). Runs on onnxruntime;
  the graph takes ``input_ids`` and ``attention_mask`` (``token_type_ids`` if it asks) and
  returns logits ``[batch, labels]``.
- sentence-transformers ``CrossEncoder`` (a Hugging Face model folder), used only when
  sentence-transformers is importable and the folder has no ``model.onnx``.

No NLI weights ship with any package on this project's index, so users bring their own folder
(e.g. an ONNX export of ``cross-encoder/nli-deberta-v3-xsmall``).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

LABELS = ("entailment", "contradiction", "neutral")


class NLIModel:
    """``predict(pairs)`` → one ``{entailment, contradiction, neutral}`` probability dict a pair."""

    def __init__(self, folder: str | Path, *, batch_size: int = 16, max_tokens: int = 512):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise ValueError(f"NLI model folder {self.folder} does not exist")
        self.batch_size = batch_size
        config_path = self.folder / "config.json"
        config = json.loads(config_path.read_text()) if config_path.is_file() else {}
        self.id2label = _label_map(config.get("id2label"))
        if (self.folder / "model.onnx").is_file():
            self._load_onnx(max_tokens)
        else:
            self._load_cross_encoder()

    def _load_onnx(self, max_tokens: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        tok_path = self.folder / "tokenizer.json"
        if not tok_path.is_file():
            raise ValueError(f"{self.folder} has model.onnx but no tokenizer.json")
        if self.id2label is None:
            raise ValueError(f"{self.folder}/config.json must map output ids to labels (id2label)")
        self.tokenizer = Tokenizer.from_file(str(tok_path))
        self.tokenizer.enable_truncation(max_tokens)
        self.tokenizer.enable_padding(pad_id=self.tokenizer.token_to_id("[PAD]") or 0)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = min(4, os.cpu_count() or 1)
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(self.folder / "model.onnx"), opts,
                                            providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self.session.get_inputs()}
        self._logits = self._onnx_logits
        self.kind = "onnx"

    def _load_cross_encoder(self) -> None:
        try:
            from sentence_transformers import CrossEncoder
        except ImportError:
            raise ValueError(f"{self.folder} has no model.onnx, and sentence-transformers is not "
                             "installed to load it as a CrossEncoder") from None
        self.cross_encoder = CrossEncoder(str(self.folder), device="cpu")
        if self.id2label is None:
            self.id2label = _label_map(self.cross_encoder.config.id2label)
        if self.id2label is None:
            raise ValueError(f"{self.folder}: cannot tell which output is entailment (id2label)")
        self._logits = lambda pairs: np.asarray(
            self.cross_encoder.predict(list(pairs), apply_softmax=False, convert_to_numpy=True))
        self.kind = "cross_encoder"

    def _onnx_logits(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        encs = self.tokenizer.encode_batch([(p, h) for p, h in pairs])
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        feed = {"input_ids": ids,
                "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64)}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.array([e.type_ids for e in encs], dtype=np.int64)
        feed = {k: v for k, v in feed.items() if k in self._inputs}
        return np.asarray(self.session.run(None, feed)[0], dtype=np.float64)

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, float]]:
        """Probabilities for (premise, hypothesis) pairs, in batches."""
        out: list[dict[str, float]] = []
        for start in range(0, len(pairs), self.batch_size):
            logits = self._logits(pairs[start:start + self.batch_size])
            logits = logits - logits.max(axis=1, keepdims=True)
            probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
            for row in probs:
                d = {label: 0.0 for label in LABELS}
                for idx, label in self.id2label.items():
                    d[label] = d.get(label, 0.0) + float(row[idx])
                out.append(d)
        return out


def _label_map(raw: dict | None) -> dict[int, str] | None:
    """``{index: label}`` with labels normalised ('ENTAILMENT', 'LABEL_0'...) or None."""
    if not raw:
        return None
    out = {}
    for k, v in raw.items():
        label = str(v).strip().lower()
        for known in LABELS:
            if label.startswith(known[:6]):
                label = known
        out[int(k)] = label
    if "entailment" not in out.values():
        return None
    return out


_models: dict[str, NLIModel] = {}
_lock = threading.Lock()


def load_nli(folder: str | Path) -> NLIModel:
    """The NLI model in ``folder``, loaded once per process."""
    key = str(Path(folder).resolve())
    with _lock:
        if key not in _models:
            _models[key] = NLIModel(key)
        return _models[key]
