"""Builders shared by the runner tests."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from sluice.release.model import Release
from sluice.runner.pacing import RetryPolicy
from sluice.runner.run import run_release

FAST = RetryPolicy(retries=3, base_s=0.001, cap_s=0.005)


def release(url: str, *, model: str = "m1", fallbacks: list[dict] | None = None, cost: dict | None = None,
            timeout_s: float = 10.0, **extra: Any) -> Release:
    return Release.model_validate({
        "name": "support", "version": "1",
        "components": {"responder": {"provider": "openai", "model": model, "base_url": url,
                                     "timeout_s": timeout_s, "params": {"temperature": 0},
                                     "system_prompt": "Be brief.", "fallbacks": fallbacks or [], **extra}},
        "cost": cost or {},
    })


def rows(n: int, text: str = "question {i}", cohort: str = "default") -> list[dict[str, Any]]:
    return [{"id": f"r{i}", "input": [{"role": "user", "content": text.format(i=i)}], "cohort": cohort}
            for i in range(n)]


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def run(rel, data, store, **kw):
    kw.setdefault("retry_policy", FAST)
    kw.setdefault("progress", False)
    return asyncio.run(run_release(rel, data, store=store, dataset_version="sha256:ds1", dataset_name="ds", **kw))
