"""http and python targets: the row goes in, the app's answer (and its failures) come back."""

from __future__ import annotations

import json
import textwrap

import httpx
import pytest

from sluice.errors import ConfigError
from sluice.release.model import Release

from runner_helpers import rows, run


def http_release(**target) -> Release:
    return Release.model_validate({"name": "app", "version": "1", "cost": {"input": 1.0, "output": 1.0},
                                   "target": {"type": "http", "url": "http://app.test/answer", **target}})


def py_release(function: str) -> Release:
    return Release.model_validate({"name": "app", "version": "1", "target": {"type": "python", "function": function}})


class App:
    """A fake app behind httpx.MockTransport that records what it received."""

    def __init__(self, fail_first: int = 0, status: int = 500):
        self.requests: list[httpx.Request] = []
        self.fail_first, self.status = fail_first, status

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if len(self.requests) <= self.fail_first:
            return httpx.Response(self.status, json={"error": {"message": "app down"}})
        row = json.loads(request.content)
        return httpx.Response(200, json={
            "output": f"answer to {row['id']}", "context": [{"text": "doc", "id": "d1"}],
            "tool_calls": [{"name": "search", "arguments": {"q": row["id"]}}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20}})


def test_http_target_posts_the_row_with_env_headers(mem_store, monkeypatch):
    monkeypatch.setenv("APP_TOKEN", "t0k")
    app = App()
    client = httpx.AsyncClient(transport=httpx.MockTransport(app))
    res = run(http_release(headers_env={"x-app-token": "APP_TOKEN"}), rows(3), mem_store, client=client)
    assert len(app.requests) == 3
    assert app.requests[0].headers["x-app-token"] == "t0k"
    sent = json.loads(app.requests[0].content)
    assert sent["id"] == "r0" and sent["input"][0]["content"] == "question 0"
    out = res.records["r1"]["output"]
    assert out["output"] == "answer to r1" and out["context"][0]["id"] == "d1"
    assert out["tool_calls"] == [{"name": "search", "arguments": {"q": "r1"}}]
    assert out["usage"]["total_tokens"] == 120 and out["cost"] == pytest.approx(120 / 1e6)


def test_http_target_retries_5xx_and_records_4xx(mem_store):
    app = App(fail_first=2)
    res = run(http_release(), rows(1), mem_store, client=httpx.AsyncClient(transport=httpx.MockTransport(app)))
    assert res.records["r0"]["output"]["attempts"] == 3 and len(app.requests) == 3
    app4 = App(fail_first=5, status=422)
    res = run(http_release(), rows(1), mem_store, use_cache=False, evaluators=[{"n": 1}],
              client=httpx.AsyncClient(transport=httpx.MockTransport(app4)))
    assert res.records["r0"]["output"]["error_kind"] == "http_4xx" and len(app4.requests) == 1


def test_http_target_missing_header_env_var(mem_store, monkeypatch):
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="NOT_SET_TOKEN is not set"):
        run(http_release(headers_env={"authorization": "NOT_SET_TOKEN"}), rows(1), mem_store)


def test_http_target_bad_answer_is_a_row_error(mem_store):
    client = httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, json={"answer": 1})))
    res = run(http_release(), rows(1), mem_store, client=client)
    assert res.records["r0"]["output"]["error_kind"] == "malformed"


@pytest.fixture
def app_module(tmp_path):
    (tmp_path / "myapp_runner_test.py").write_text(textwrap.dedent("""
        import asyncio

        def answer(row):
            if row["id"] == "r2":
                raise ValueError("no answer for r2")
            return "plain " + row["input"][0]["content"]

        async def aanswer(row):
            await asyncio.sleep(0)
            return {"output": "async " + row["id"], "usage": {"prompt_tokens": 5, "completion_tokens": 1}, "cost": 0.5}
    """))
    return tmp_path


def test_python_target_sync_and_async(mem_store, app_module):
    res = run(py_release("myapp_runner_test:answer"), rows(3), mem_store, root=app_module)
    outs = {k: v["output"] for k, v in res.records.items()}
    assert outs["r0"]["output"] == "plain question 0"
    assert outs["r2"]["error_kind"] == "target" and "ValueError: no answer for r2" in outs["r2"]["error"]
    res = run(py_release("myapp_runner_test:aanswer"), rows(2), mem_store, root=app_module)
    out = res.records["r1"]["output"]
    assert out["output"] == "async r1" and out["cost"] == 0.5 and out["usage"]["total_tokens"] == 6


@pytest.mark.parametrize("function, message", [
    ("no_such_module_xyz:f", "cannot import no_such_module_xyz"),
    ("myapp_runner_test:missing", "myapp_runner_test has no function missing"),
])
def test_python_target_import_problems_are_config_errors(mem_store, app_module, function, message):
    with pytest.raises(ConfigError, match=message):
        run(py_release(function), rows(1), mem_store, root=app_module)
