"""The scripted (local, fake) provider behind the gateway: the ``sluice init`` project's releases,
deployed with the ``gateway:`` snippet of docs/gateway.md, answer offline per dataset row."""

from __future__ import annotations

import json
import re
from pathlib import Path

import openai
import yaml

from gateway_fixtures import serving, spans
from sluice.demo.corpus import build_rows, responses
from sluice.demo.project import DEFAULT_ANSWER, write_project
from sluice.release.loader import load_release
from sluice.release.registry import register

DOC = Path(__file__).resolve().parents[2] / "docs" / "gateway.md"


def init_snippet() -> dict:
    """The YAML block that follows the ``init-project`` marker in docs/gateway.md."""
    text = DOC.read_text()
    m = re.search(r"<!-- init-project -->\s*```yaml\n(.*?)```", text, re.S)
    assert m, "docs/gateway.md lost its init-project snippet"
    return yaml.safe_load(m.group(1))["gateway"]


def init_project(store, root: Path, *, echo_pattern: str | None = None) -> dict:
    """The init project, registered; ``echo_pattern``: questions matching it are echoed back."""
    paths = write_project(root)
    for version in ("1.0.0", "1.2.0"):
        if echo_pattern is not None:
            with open(paths[version] / "script.jsonl", "a") as f:
                f.write(json.dumps({"pattern": echo_pattern, "content": "{last_user}"}) + "\n")
        register(store, load_release(paths[version]))
    return paths


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=20)


def test_init_project_is_served_offline(duckdb_store, tmp_path):
    init_project(duckdb_store, tmp_path / "proj")
    rows = {r["id"]: r for r in build_rows()}
    baseline = responses("baseline", list(rows.values()))
    faq = next(rid for rid, r in rows.items() if r["metadata"].get("kind") == "faq" and r["cohort"] == "enterprise")
    tool = next(rid for rid, r in rows.items() if r["metadata"].get("kind") == "tool")
    with serving(duckdb_store, init_snippet()) as (url, gw):
        c = client(url)
        stable = gw.deployments["support"].stable
        raw = c.chat.completions.with_raw_response.create(
            model="support", user="user-7", metadata={"row_id": faq},
            messages=[{"role": "user", "content": rows[faq]["input"]["question"]}])
        out = raw.parse()
        answered_by = raw.headers["x-sluice-release"]
        assert answered_by in (stable.digest, gw.deployments["support"].canary.digest)
        # both releases answer this row with the baseline's answer (the careful one fixes only slips)
        assert out.choices[0].message.content == baseline[faq]["content"]
        assert out.model in ("support-large-2026-06",) and out.usage.total_tokens > 0
        called = c.chat.completions.create(model="support", metadata={"row_id": tool},
                                           messages=[{"role": "user", "content": rows[tool]["input"]["question"]}])
        [call] = called.choices[0].message.tool_calls
        assert call.function.name == rows[tool]["expected_tool"]["name"]
        assert called.choices[0].finish_reason == "tool_calls"
        # streamed: the same answer, word by word, with usage
        chunks = list(c.chat.completions.create(
            model="support", stream=True, stream_options={"include_usage": True}, metadata={"row_id": faq},
            messages=[{"role": "user", "content": rows[faq]["input"]["question"]}]))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        assert text == baseline[faq]["content"]
        assert chunks[-1].usage is not None and len(chunks) > 4
    recorded = spans(duckdb_store)
    assert len(recorded) == 3 and all(s["status"] == "OK" and s["provider"] == "scripted"
                                      for s in recorded)


def test_scripted_answer_without_a_row_is_the_scripts_default(duckdb_store, tmp_path):
    init_project(duckdb_store, tmp_path / "proj")
    settings = init_snippet()
    settings["deployments"]["support"].pop("canary", None)
    with serving(duckdb_store, settings) as (url, _):
        out = client(url).chat.completions.create(model="support", messages=[{"role": "user", "content": "hello"}])
    # a question that is no dataset row gets the demo script's default answer (the README tour's request)
    assert out.choices[0].message.content == DEFAULT_ANSWER


def test_the_release_guardrail_blocks_a_scripted_answer(duckdb_store, tmp_path):
    init_project(duckdb_store, tmp_path / "proj", echo_pattern="@")
    settings = init_snippet()
    with serving(duckdb_store, settings) as (url, _):
        out = client(url).chat.completions.create(
            model="support", messages=[{"role": "user", "content": "mail jane.doe@example.com my invoice"}])
    # the echoed e-mail address trips the releases' pii guardrail (action: block)
    assert out.choices[0].finish_reason == "content_filter"
    assert "jane.doe@example.com" not in (out.choices[0].message.content or "")
