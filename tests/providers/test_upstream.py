"""The scripted upstream itself: SSE stream with usage, stream cut, counters, subprocess mode."""

from __future__ import annotations

import httpx
import orjson

from sluice.testing.upstream import scripted_upstream


def events(text: str) -> list[str]:
    return [e.removeprefix("data: ") for e in text.split("\n\n") if e.startswith("data: ")]


def test_stream_has_content_usage_chunk_and_done():
    with scripted_upstream() as url:
        body = {"model": "m", "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "user", "content": "tell me a story please"}]}
        with httpx.Client() as c, c.stream("POST", url + "/chat/completions", json=body) as r:
            assert r.headers["content-type"] == "text/event-stream"
            data = events(r.read().decode())
    assert data[-1] == "[DONE]"
    chunks = [orjson.loads(d) for d in data[:-1]]
    text = "".join(ch["choices"][0]["delta"].get("content", "") for ch in chunks if ch["choices"])
    assert text == "echo: tell me a story please"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 6 + 7
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"


def test_stream_cut_mid_way_has_no_done():
    with scripted_upstream() as url:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "a long answer [[cut]]"}]}
        got = b""
        try:
            with httpx.Client() as c, c.stream("POST", url + "/chat/completions", json=body) as r:
                for part in r.iter_bytes():
                    got += part
        except httpx.RemoteProtocolError:
            pass
    assert b"[DONE]" not in got and got.count(b"data: ") >= 1


def test_fail_first_n_then_answer_and_counters():
    with scripted_upstream(modes={"bad": "503"}) as url, httpx.Client() as c:
        def post(model, text):
            return c.post(url + "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": text}]})
        assert [post("m", "x [[500x2]]").status_code for _ in range(3)] == [500, 500, 200]
        assert post("bad", "y").status_code == 503
        assert post("m", "y", ).status_code == 200
        r = c.post(url + "/chat/completions", json={"model": "m", "messages": []}, headers={"x-upstream-mode": "429:7"})
        assert (r.status_code, r.headers["retry-after"]) == (429, "7")
        stats = url.stats()
        assert stats["requests"] == 6 and stats["max_in_flight"] == 1
        assert [e["mode"] for e in stats["log"]] == ["500", "500", None, "503", None, "429"]
        url.reset()
        assert url.stats()["requests"] == 0


def test_subprocess_mode_serves_and_counts_over_http():
    with scripted_upstream(subprocess=True) as url, httpx.Client() as c:
        r = c.post(url + "/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        assert r.json()["choices"][0]["message"]["content"] == "echo: hi"
        assert url.stats()["requests"] == 1
