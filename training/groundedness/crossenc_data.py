"""Claim-level inputs for the groundedness cross-encoder, from the sets ``data.py`` builds.

Each output row: ``{"set", "group", "a", "b", "label"}`` where ``a``/``b`` are the two text
segments the model reads (``sluice.evals.backends.crossenc.encode_pair``: the claim with its
question, and the context sentences chosen for it) and ``label`` is 1 when the context supports
the claim. ``group`` is the answer the claim comes from (an answer is grounded when all of its
claims are).

Labels per claim:

- a grounded answer: every claim 1.
- a hallucinated HaluEval answer: every claim 0 (the answers are mostly one sentence).
- a SummEdits summary labelled inconsistent: its claims that are not sentences of the original
  (consistent) summary are 0, the unchanged ones 1 — the edit is where the error is.
- HaluEval rewrites (data.py ``augmented_rows``): their own label, with and without the question.

Usage (the repository venv; writes train/valid jsonl):
    python training/groundedness/crossenc_data.py SETS_DIR SRC_DIR OUT_DIR
SETS_DIR is data.py's output; SRC_DIR holds summedits_<domain>.json (for the original summaries).
Validation (checkpoint choice): 10 % of the SummEdits training documents and halueval_heldout —
never HaluEval dev or SummEdits news/scitldr, which are only measured on.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

from sluice.evals.backends.crossenc import encode_pair
from sluice.evals.claims import extract_claims

TRAIN_DOMAINS = ("podcast", "qmsumm", "sales_call", "sales_email", "samsum", "ectsum")


def _norm(s: str) -> str:
    return " ".join(s.lower().split())


def claim_rows(rows: list[dict], set_name: str, originals: dict | None = None,
               no_query: bool = False) -> list[dict]:
    out = []
    for r in rows:
        q = None if no_query else r["query"]
        claims = extract_claims(r["response"])
        if not claims:
            continue
        orig = originals.get(r["id"]) if originals else None
        orig_claims = {_norm(c) for c in extract_claims(orig)} if orig else set()
        for c in claims:
            if r["label"] == 1:
                label = 1
            elif orig_claims:
                label = int(_norm(c) in orig_claims)
            else:
                label = 0
            a, b = encode_pair(c, q, r["context"])
            out.append({"set": set_name, "group": f"{set_name}/{r['id']}", "a": a, "b": b,
                        "label": label})
    return out


def load(sets_dir: Path, name: str) -> list[dict]:
    return [json.loads(x) for x in (sets_dir / f"{name}.jsonl").read_text().splitlines()]


def main(sets_dir: Path, src: Path, out: Path, seed: int = 13) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    train, valid = [], []
    train += claim_rows(load(sets_dir, "halueval_train"), "halueval_train")
    aug = load(sets_dir, "halueval_augmented")
    train += claim_rows(aug, "halueval_augmented")
    noq = [r for r in aug if r["id"].split("-", 1)[1] in ("sentence", "swapped", "number",
                                                         "negated")]
    train += claim_rows(noq, "halueval_augmented_noq", no_query=True)
    valid += claim_rows(load(sets_dir, "halueval_heldout"), "halueval_heldout")
    for d in TRAIN_DOMAINS:
        records = json.loads((src / f"summedits_{d}.json").read_text())
        originals = {r["id"]: r.get("original_summary") or "" for r in records}
        docs = sorted({r["doc"] for r in records})
        held = set(rng.sample(docs, max(1, len(docs) // 10)))
        rows = [{"id": r["id"], "query": None, "context": [r["doc"]], "response": r["summary"],
                 "label": int(r["label"]), "doc": r["doc"]} for r in records]
        tr = claim_rows([r for r in rows if r["doc"] not in held], f"summedits_{d}", originals)
        va = claim_rows([r for r in rows if r["doc"] in held], f"summedits_{d}", originals)
        # The consistent originals themselves, once per document (faithful, often paraphrased).
        seen = set()
        for r in records:
            if r["doc"] in held or r["doc"] in seen or not r.get("original_summary"):
                continue
            seen.add(r["doc"])
            tr += claim_rows([{"id": f"orig-{len(seen)}", "query": None, "context": [r["doc"]],
                               "response": r["original_summary"], "label": 1}],
                             f"summedits_{d}")
        train += tr
        valid += va
    for name, rows in (("train", train), ("valid", valid)):
        (out / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        by = {}
        for r in rows:
            by.setdefault(r["set"], [0, 0])[r["label"]] += 1
        print(name, len(rows), {k: f"{v[1]}+/{v[0]}-" for k, v in by.items()})


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
