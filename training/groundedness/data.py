"""Build the labelled groundedness sets (jsonl) from the public sources in SOURCES.md.

Each output row: ``{"set", "id", "query", "context": [..], "response", "label"}`` with label 1 for a
grounded (faithful) answer and 0 for a hallucinated one. Splits never overlap:

- ``halueval_train``: HaluEval QA records 0–399 of the 1,000-record cut (both answers of each).
- ``halueval_heldout``: records 400–499 of that cut; never trained on.
- ``halueval_dev``: ../shared/data/halueval_qa_dev.jsonl (records 500–999), matched out of the
  cut by question text so no dev question reaches training.
- ``summedits_train``: SummEdits domains podcast, qmsumm, sales_call, sales_email, samsum, ectsum.
- ``summedits_news`` / ``summedits_scitldr``: held-out domains (paraphrased news summaries, and
  scientific TL;DRs), never trained on.

Usage: python training/groundedness/data.py SRC_DIR OUT_DIR
(SRC_DIR holds qa_cut1000.json and summedits_<domain>.json as taken from the sources.)
The held-out sets are also written, gzipped, to tests/evals/data/groundedness/ (shipped in the
repository for the labelled tests and ``make bench-groundedness``).
"""

from __future__ import annotations

import gzip
import json
import random
import re
import sys
from pathlib import Path

from sluice.evals.text import STOPWORDS

SHIPPED = ("halueval_heldout", "halueval_heldout_augmented", "summedits_news",
           "summedits_scitldr")
TRAIN_DOMAINS = ("podcast", "qmsumm", "sales_call", "sales_email", "samsum", "ectsum")
HELDOUT_DOMAINS = ("news", "scitldr")
REPO = Path(__file__).resolve().parents[2]
SHIP_DIR = REPO / "tests" / "evals" / "data" / "groundedness"
# shared/ sits beside the repository (CI, the main checkout) or at /work/shared (worktrees).
DEV = next((p for p in (REPO.parent / "shared", Path("/work/shared"))
            if (p / "data" / "halueval_qa_dev.jsonl").is_file()),
           REPO.parent / "shared") / "data" / "halueval_qa_dev.jsonl"


def halueval_rows(records: list[dict], name: str) -> list[dict]:
    out = []
    for i, r in enumerate(records):
        for label, key in ((1, "right_answer"), (0, "hallucinated_answer")):
            out.append({"set": name, "id": f"{i}-{label}", "query": r["question"],
                        "context": [r["knowledge"].strip()], "response": r[key], "label": label})
    return out


_ENTITY = re.compile(r"(?:[A-Z][\w'’-]+|[0-9][\w,.]*)(?:\s+(?:of\s+|the\s+|de\s+)?"
                     r"(?:[A-Z][\w'’-]+|[0-9][\w,.]*))*")
_VERB = re.compile(r"\b(is|was|are|were|has|had|will)\b")


def _sentences(text: str) -> list[str]:
    # HaluEval's knowledge glues sentences ("...century.First for Women is...").
    return [s.strip() for s in re.split(r"(?<=[a-z0-9)][.!?])\s*(?=[A-Z\"'])", text) if s.strip()]


def augmented_rows(records: list[dict], name: str, seed: int = 13) -> list[dict]:
    """Answers of every length from the training records (FactCC-style rewrites).

    HaluEval's right answers are short spans and its hallucinated ones sentences, so a model
    trained on it alone learns "a sentence is a hallucination". These rows break that: right
    answers written as the context sentence that states them (grounded, long), a wrong span of
    the context given as the answer (ungrounded, short), and that sentence with the answer
    swapped for another name of the context, a number changed, or a negation added.
    """
    rng = random.Random(seed)
    out = []
    for i, r in enumerate(records):
        answer, ctx, q = r["right_answer"].strip(), r["knowledge"].strip(), r["question"]
        if answer.lower() in ("yes", "no") or len(answer) < 2:
            continue

        def add(kind: str, response: str, label: int) -> None:
            out.append({"set": name, "id": f"{i}-{kind}", "query": q, "context": [ctx],
                        "response": response, "label": label})

        sentence = next((s for s in _sentences(ctx) if answer in s), None)
        if sentence:
            add("sentence", sentence, 1)
        # The answer in words that are not the context's: the question restated, or a lead-in.
        asked = re.sub(r"\s*\?\s*$", "", q.strip())
        add("restated", f"{asked}: {answer}." if rng.random() < 0.5 else f"It is {answer}.", 1)
        q_low = q.lower()
        others = [m.group(0) for m in _ENTITY.finditer(ctx)
                  if m.group(0) not in answer and answer not in m.group(0)
                  and m.group(0).lower() not in q_low and len(m.group(0)) > 2
                  and (" " in m.group(0) or m.group(0).lower() not in STOPWORDS)]
        if others:
            wrong = rng.choice(others)
            add("wrong-span", wrong, 0)
            add("wrong-restated", f"{asked}: {wrong}." if rng.random() < 0.5 else
                f"It is {wrong}.", 0)
            if sentence and rng.random() < 0.5:
                add("swapped", sentence.replace(answer, wrong, 1), 0)
        if sentence and rng.random() < 0.5:
            nums = re.findall(r"\b\d+\b", sentence)
            if nums:
                n = rng.choice(nums)
                add("number", re.sub(rf"\b{n}\b", str(int(n) + rng.randint(1, 9)), sentence, 1), 0)
            elif _VERB.search(sentence):
                add("negated", _VERB.sub(lambda m: m.group(1) + " not", sentence, 1), 0)
    return out


def summedits_rows(records: list[dict], name: str) -> list[dict]:
    return [{"set": name, "id": r["id"], "query": None, "context": [r["doc"]],
             "response": r["summary"], "label": int(r["label"])} for r in records]


def main(src: Path, out: Path, dev: Path = DEV) -> None:
    out.mkdir(parents=True, exist_ok=True)
    dev_records = [json.loads(x) for x in dev.read_text().splitlines() if x.strip()]
    dev_q = {r["question"].strip() for r in dev_records}
    cut = [json.loads(x) for x in (src / "qa_cut1000.json").read_text().splitlines() if x.strip()]
    pool = [r for r in cut if r["question"].strip() not in dev_q]
    sets = {"halueval_train": halueval_rows(pool[:400], "halueval_train"),
            "halueval_augmented": augmented_rows(pool[:400], "halueval_augmented"),
            "halueval_heldout": halueval_rows(pool[400:500], "halueval_heldout"),
            "halueval_heldout_augmented": augmented_rows(pool[400:500],
                                                         "halueval_heldout_augmented"),
            "halueval_dev": halueval_rows(dev_records, "halueval_dev")}
    train = []
    for d in TRAIN_DOMAINS:
        train += summedits_rows(json.loads((src / f"summedits_{d}.json").read_text()),
                                f"summedits_{d}")
    sets["summedits_train"] = train
    for d in HELDOUT_DOMAINS:
        sets[f"summedits_{d}"] = summedits_rows(
            json.loads((src / f"summedits_{d}.json").read_text()), f"summedits_{d}")
    for name, rows in sets.items():
        text = "".join(json.dumps(r) + "\n" for r in rows)
        (out / f"{name}.jsonl").write_text(text)
        if name in SHIPPED:
            SHIP_DIR.mkdir(parents=True, exist_ok=True)
            with gzip.GzipFile(SHIP_DIR / f"{name}.jsonl.gz", "wb", mtime=0) as f:
                f.write(text.encode())
        print(f"{name}: {len(rows)} rows, {sum(r['label'] for r in rows)} grounded")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
