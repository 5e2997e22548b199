"""Synthetic users for a deployment, so a rollout has live traffic to decide on (the README tour).

    python -m sluice.testing.traffic --deployment support --rps 30 --duration 5m \
        --cohorts enterprise=0.3,billing=0.2,free-tier=0.5 [--url http://127.0.0.1:4000] [--feedback 0.02]

Each request comes from one of ``--users`` sticky users (so a user stays on one arm), with the
user's cohort in ``x-sluice-cohort`` (by default the dataset's cohorts, equally); questions are drawn
from that cohort's rows of the example project's dataset when a ``data/support.jsonl`` is in the
current folder (its ``metadata.row_id`` lets the scripted model answer), else a fixed question. ``--feedback`` is the share of answers that get a thumbs-down.
Prints a line per 10 seconds; stops after ``--duration`` or ``--requests``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import time
from pathlib import Path

import httpx

from sluice.telemetry.timespec import parse_duration


def _cohorts(spec: str) -> list[tuple[str, float]]:
    out = []
    for part in spec.split(","):
        name, _, weight = part.partition("=")
        out.append((name.strip(), float(weight or 1)))
    return out


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            rows.append(json.loads(line))
    return rows


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    rows = _rows(Path(args.dataset))
    by_cohort: dict[str, list[dict]] = {}
    for row in rows:
        by_cohort.setdefault(str(row.get("cohort") or "default"), []).append(row)
    cohorts = _cohorts(args.cohorts) if args.cohorts else [(c, 1.0) for c in sorted(by_cohort)] or [("default", 1.0)]
    names, weights = [c for c, _ in cohorts], [w for _, w in cohorts]
    headers = {"authorization": f"Bearer {os.environ['SLUICE_API_KEY']}"} if os.environ.get("SLUICE_API_KEY") else {}
    deadline = time.monotonic() + parse_duration(args.duration, "--duration")
    counts = {"sent": 0, "ok": 0}
    routes: dict[str, int] = {}
    pause = args.concurrency / args.rps

    async def user_loop(client: httpx.AsyncClient, seed: int) -> None:
        r_ = random.Random(seed)
        while time.monotonic() < deadline and counts["sent"] < args.requests:
            user = f"user-{r_.randrange(args.users)}"
            h = int.from_bytes(hashlib.blake2b(user.encode(), digest_size=4).digest(), "big") / 2**32
            cohort = names[next(i for i, w in enumerate(_cumulative(weights)) if h <= w)]
            pool = by_cohort.get(cohort) or rows
            row = r_.choice(pool) if pool else None
            question = (row["input"].get("question") if row and isinstance(row.get("input"), dict) else None) \
                or "How do refunds work?"
            body = {"model": args.deployment, "user": user, "messages": [{"role": "user", "content": question}],
                    "metadata": {"row_id": row["id"]} if row else {}}
            counts["sent"] += 1
            began = time.monotonic()
            try:
                r = await client.post("/v1/chat/completions", json=body, headers={"x-sluice-cohort": cohort})
                route = r.headers.get("x-sluice-route", str(r.status_code))
                routes[route] = routes.get(route, 0) + 1
                counts["ok"] += r.status_code == 200
                if r.status_code == 200 and r_.random() < args.feedback:
                    await client.post("/api/feedback", json={"trace_id": r.headers["x-sluice-trace-id"],
                                                             "kind": "thumbs_down"})
            except httpx.HTTPError as e:
                routes[type(e).__name__] = routes.get(type(e).__name__, 0) + 1
            await asyncio.sleep(max(0.0, pause - (time.monotonic() - began)))

    async def report() -> None:
        while time.monotonic() < deadline and counts["sent"] < args.requests:
            await asyncio.sleep(10)
            print(f"{counts['sent']} requests sent, {counts['ok']} answered, routes {routes}", flush=True)

    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=30) as client:
        reporter = asyncio.create_task(report())
        await asyncio.gather(*(user_loop(client, rng.randrange(2**32)) for _ in range(args.concurrency)))
        reporter.cancel()
    print(f"done: {counts['sent']} requests sent, {counts['ok']} answered, routes {routes}", flush=True)
    return 0


def _cumulative(weights: list[float]) -> list[float]:
    total, acc, out = sum(weights), 0.0, []
    for w in weights:
        acc += w / total
        out.append(acc)
    out[-1] = 1.0
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:4000")
    p.add_argument("--deployment", required=True)
    p.add_argument("--rps", type=float, default=30.0)
    p.add_argument("--duration", default="5m")
    p.add_argument("--requests", type=int, default=10**9)
    p.add_argument("--concurrency", type=int, default=8, help="users in flight at once")
    p.add_argument("--users", type=int, default=5000)
    p.add_argument("--cohorts", default=None, help="name=weight,... (default: the dataset's cohorts, equally)")
    p.add_argument("--dataset", default="data/support.jsonl")
    p.add_argument("--feedback", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    raise SystemExit(asyncio.run(run(p.parse_args())))


if __name__ == "__main__":
    main()
