"""``sluice gate`` against an OpenAI-compatible upstream: the error budget (exit 5) and the cache.

The upstream is ``sluice.testing.upstream.scripted_upstream`` on loopback, one server for the
module; each release is routed to a failure mode by its model name. Retries are off
(``SLUICE_RETRIES=0`` in every subprocess) so failing rows fail at once.
"""

from __future__ import annotations

import json
import socket

import pytest

from cli_fixtures import error_line, verdict_line, write_release
from sluice.testing.upstream import scripted_upstream

KEY_ENV = {"TOY_UPSTREAM_KEY": "sk-test-not-a-secret"}


def answer_like_the_dataset(body: dict) -> str:
    """``question alpha-03`` -> ``answer alpha-03``: the right answer for every toy row."""
    return body["messages"][-1]["content"].replace("question", "answer", 1)


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openai_block(model: str, base_url: str) -> str:
    return (f"    provider: openai\n    model: {model}\n    base_url: {base_url}\n"
            f"    api_key_env: TOY_UPSTREAM_KEY\n")


@pytest.fixture(scope="module")
def upstream(toy):
    with scripted_upstream(reply=answer_like_the_dataset, modes={"toy-down": "500"}) as url:
        folders = [
            write_release(toy.root, "up-ok", "1.0.0", provider_block=openai_block("toy-ok", url)),
            write_release(toy.root, "up-down", "1.0.0", provider_block=openai_block("toy-down", url)),
            write_release(toy.root, "up-closed", "1.0.0",
                          provider_block=openai_block("toy-closed", f"http://127.0.0.1:{closed_port()}/v1")),
        ]
        reg = toy("release", "register", *[str(f) for f in folders])
        assert reg.returncode == 0, reg.stderr
        yield url


def gate(toy, candidate: str, baseline: str, report: str, env: dict[str, str] | None = KEY_ENV):
    return toy("gate", "--candidate", candidate, "--baseline", baseline, "--dataset", "toy",
               "--policy", "gate.yaml", "-q", "--json", report, env=env)


@pytest.fixture(scope="module")
def both_down(toy, upstream):
    """Candidate on an upstream answering 500, baseline on a port nothing listens on."""
    upstream.reset()
    proc = gate(toy, "up-down@1.0.0", "up-closed@1.0.0", "down.json")
    return proc, upstream.stats()


def test_upstream_errors_beyond_the_error_budget_give_the_exit_5_verdict(toy, both_down):
    proc, stats = both_down
    assert "Traceback" not in proc.stderr
    assert verdict_line(proc.stdout)[1] == 5
    report = json.loads((toy.root / "down.json").read_text())
    assert report["exit_code"] == 5
    errors = report["errors"]
    assert (errors["n_rows"], errors["candidate_errors"], errors["baseline_errors"]) == (40, 40, 40)
    assert errors["candidate_kinds"] == {"http_5xx": 40}
    assert errors["baseline_kinds"] == {"connection": 40}
    assert stats["requests"] == 40  # retries are off: one request per candidate row, none for the baseline
    budget = {c["id"]: c["status"] for c in report["checks"] if c["metric"].endswith("error_rate")}
    assert set(budget.values()) == {"error"} and len(budget) == 2, budget


def test_exit_5_names_the_cause_first_and_not_the_checks_that_follow_from_it(toy, both_down):
    proc, _ = both_down
    report = json.loads((toy.root / "down.json").read_text())
    closed = next(r for r in report["reasons"] if r.startswith("baseline target failed: connection ×40 ("))
    assert "127.0.0.1" in closed and "connection failed" in closed, closed
    assert report["reasons"][0].startswith("candidate target failed: http_5xx ×40 ("), report["reasons"]
    assert len(report["reasons"]) <= 3 and not any("pass-rate delta" in r for r in report["reasons"])
    banner = proc.stdout[:proc.stdout.index("Evaluators by cohort")]
    assert "baseline target failed: connection ×40" in " ".join(banner.split())


def test_upstream_errors_beyond_the_error_budget_exit_5(both_down):
    assert both_down[0].returncode == 5


def test_missing_api_key_variable_exits_3_naming_it(toy, upstream):
    upstream.reset()
    proc = gate(toy, "up-ok@1.0.0", "toy@1.0.0", "nokey.json", env={"TOY_UPSTREAM_KEY": ""})
    assert proc.returncode == 3
    assert "TOY_UPSTREAM_KEY" in error_line(proc)
    assert upstream.stats()["requests"] == 0


def test_second_identical_gate_is_served_from_cache(toy, upstream):
    upstream.reset()
    first = gate(toy, "up-ok@1.0.0", "toy@1.0.0", "ok1.json")
    assert first.returncode == 0, first.stdout + first.stderr
    assert verdict_line(first.stdout) == ("pass", 0)
    assert upstream.stats()["requests"] == 40
    second = gate(toy, "up-ok@1.0.0", "toy@1.0.0", "ok2.json")
    assert second.returncode == 0, second.stdout + second.stderr
    assert upstream.stats()["requests"] == 40  # nothing new reached the upstream
    one, two = (json.loads((toy.root / n).read_text()) for n in ("ok1.json", "ok2.json"))
    assert one["verdict"] == two["verdict"] == "pass"
    assert one["candidate"]["digest"] == two["candidate"]["digest"]
    assert one["eval"] == two["eval"]
