"""LLM-judge evaluators against a fake upstream: a scripted OpenAI-compatible server on
127.0.0.1 started by this test (no real model, no network). It answers from markers in the
request and records every request it receives."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sluice.evals import ContextRelevance, Groundedness, LLMJudge, TaskCompletion, build
from sluice.evals.backends import llm_judge as judge_mod
from sluice.evals.backends.llm_judge import JudgeError, parse_score


class FakeUpstream:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.fail_next = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                outer.requests.append({"path": self.path, "body": body,
                                       "auth": self.headers.get("authorization")})
                status, reply = outer.answer(body)
                payload = json.dumps({"choices": [{"message": {"role": "assistant",
                                                               "content": reply}}]}).encode()
                if status != 200:
                    payload = b'{"error": "scripted failure"}'
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, body: dict) -> tuple[int, str]:
        if self.fail_next:
            self.fail_next -= 1
            return 503, ""
        text = body["messages"][-1]["content"]
        if "CASE:garbage" in text:
            return 200, "I think it is rather good overall."
        if "CASE:bad_request" in text:
            return 400, ""
        if "Claims:" in text:  # groundedness: claims mentioning "moon" are unsupported
            claims = [line for line in text.split("Claims:\n")[1].splitlines() if line.strip()]
            verdicts = [{"claim": i + 1, "supported": "moon" not in c} for i, c in
                        enumerate(claims)]
            return 200, "```json\n" + json.dumps({"verdicts": verdicts}) + "\n```"
        if "Documents:" in text:
            docs = [line for line in text.split("Documents:\n")[1].splitlines() if line]
            return 200, json.dumps({"documents": [{"doc": i + 1, "relevant": "refund" in d}
                                                  for i, d in enumerate(docs)]})
        if "CASE:prose" in text:
            return 200, "Reasoning... Score: 4/5"
        return 200, 'Here you go: {"score": 0.8, "reason": "mostly right"}'

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def upstream():
    judge_mod._memory.clear()
    fake = FakeUpstream()
    yield fake
    fake.close()


def _judge(upstream, **kw) -> LLMJudge:
    return LLMJudge(rubric="Is the answer correct?", base_url=upstream.url, model="judge-1", **kw)


def test_scores_are_parsed_and_requests_well_formed(upstream, monkeypatch) -> None:
    monkeypatch.setenv("JUDGE_KEY", "secret-1")
    r = _judge(upstream, api_key_env="JUDGE_KEY").evaluate(response="42", query="6 x 7?")
    assert (r.score, r.passed, r.reason, r.error) == (0.8, True, "mostly right", None)
    req = upstream.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == "Bearer secret-1"
    assert req["body"]["model"] == "judge-1" and req["body"]["temperature"] == 0.0
    assert "Is the answer correct?" in req["body"]["messages"][0]["content"]
    assert "## Query\n6 x 7?" in req["body"]["messages"][1]["content"]
    r = _judge(upstream, scale=5).evaluate(response="CASE:prose")
    assert r.score == pytest.approx(0.8)


def test_answers_are_cached_in_memory_and_on_disk(upstream, tmp_path) -> None:
    ev = _judge(upstream, cache_dir=str(tmp_path))
    first = ev.evaluate(response="cached answer")
    assert ev.evaluate(response="cached answer") == first
    assert len(upstream.requests) == 1
    judge_mod._memory.clear()
    again = _judge(upstream, cache_dir=str(tmp_path)).evaluate(response="cached answer")
    assert again == first and len(upstream.requests) == 1
    assert len(list(tmp_path.rglob("*.json"))) == 1
    _judge(upstream, cache_dir=str(tmp_path)).evaluate(response="another answer")
    assert len(upstream.requests) == 2


def test_transient_failures_are_retried(upstream) -> None:
    upstream.fail_next = 1
    assert _judge(upstream).evaluate(response="retry me").score == 0.8
    assert len(upstream.requests) == 2


@pytest.mark.parametrize("response,message", [
    ("CASE:garbage", "no score in judge reply"),
    ("CASE:bad_request", "HTTP 400"),
])
def test_judge_failures_are_errors_not_zeros(upstream, response, message) -> None:
    r = _judge(upstream).evaluate(response=response)
    assert r.error and message in r.error and not r.passed


def test_unreachable_or_unconfigured_judge_is_an_error(upstream, monkeypatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    r = _judge(upstream, api_key_env="NO_SUCH_KEY").evaluate(response="x")
    assert "NO_SUCH_KEY is not set" in r.error
    dead = LLMJudge(rubric="r", base_url="http://127.0.0.1:9/v1", model="m", timeout_s=2)
    dead.client.max_retries = 0
    assert "unreachable" in dead.evaluate(response="x").error


def test_judge_backends_of_other_evaluators(upstream) -> None:
    judge = {"base_url": upstream.url, "model": "judge-1"}
    g = Groundedness(backend="llm_judge", judge=judge).evaluate(
        response="The sun is a star. The moon is made of cheese.", context=["The sun is a star."])
    assert g.score == 0.5 and [c["supported"] for c in g.details["claims"]] == [True, False]
    c = ContextRelevance(backend="llm_judge", judge=judge).evaluate(
        query="refund window?", context=["refund in 30 days", "opening hours", "refund forms"])
    assert c.score == pytest.approx(2 / 3)
    assert [d["relevant"] for d in c.details["documents"]] == [True, False, True]
    t = TaskCompletion(backend="llm_judge", judge=judge).evaluate(query="q", response="done")
    assert t.score == 0.8
    batch = build({"name": "llm_judge", "rubric": "r", "base_url": upstream.url, "model": "m"}) \
        .evaluate_batch([{"response": f"answer {i}"} for i in range(12)])
    assert [b.score for b in batch] == [0.8] * 12
    with pytest.raises(Exception, match="unknown judge setting"):
        Groundedness(backend="llm_judge", judge={**judge, "modle": "x"})


@pytest.mark.parametrize("text,scale,expected", [
    ('{"score": 0.25, "reason": "weak"}', 1, (0.25, "weak")),
    ('```json\n{"score": "3/4"}\n```', 1, (0.75, "")),
    ('{"score": 4}', 5, (0.8, "")),
    ('{"verdict": "PASS", "reason": "ok"}', 1, (1.0, "ok")),
    ("Score: 7 out of 10", 1, (0.7, "Score: 7 out of 10")),
    ("FAIL - the answer invents a date", 1, (0.0, "FAIL - the answer invents a date")),
])
def test_parse_score(text, scale, expected) -> None:
    assert parse_score(text, scale) == pytest.approx(expected)


@pytest.mark.parametrize("text", ['{"score": 7}', "no idea", '{"verdict": "maybe"}'])
def test_parse_score_refuses_what_it_cannot_read(text) -> None:
    with pytest.raises(JudgeError):
        parse_score(text)
