"""A scripted OpenAI-compatible upstream on 127.0.0.1, for tests and benchmarks.

A minimal HTTP/1.1 server on raw asyncio streams (keep-alive, chunked SSE) rather than an ASGI
stack, so a 2,000-row benchmark measures Sluice and not the fake. It runs in a background thread
or in a subprocess (``python -m sluice.testing.upstream``) and counts what it receives.

Failure modes are chosen per request, first match wins: an ``x-upstream-mode`` header, a
``[[mode]]`` marker in the last user message, ``modes[model]``, then ``default_mode``. A mode is
``NAME[:ARG][xN]``; ``xN`` applies it only to the first N requests with the same (model, last user
message), so ``[[500x2]]`` fails twice and then answers. Names:
  ``<status>`` (e.g. ``500``, ``400``) error body; ``429[:SECONDS]`` with retry-after;
  ``context`` a 400 context_length_exceeded; ``reset`` close the connection without a response;
  ``malformed`` a 200 with a body that is not JSON; ``slow:SECONDS`` answer late;
  ``cut`` stream (or body) cut mid-way.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import orjson

MARKER = re.compile(r"\[\[([^\]]+)\]\]")
MODE = re.compile(r"^(?P<name>[a-z]+|\d{3})(?::(?P<arg>[0-9.]+))?(?:x(?P<n>\d+))?$")
REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 429: "Too Many Requests",
           500: "Internal Server Error", 503: "Service Unavailable"}
Reply = Callable[[dict[str, Any]], "str | dict[str, Any]"]


def _tokens(text: str) -> int:
    return (len(text) + 3) // 4


def _last_user(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user" and isinstance(m.get("content"), str):
            return m["content"]
    return ""


def echo_reply(body: dict[str, Any]) -> str:
    return "echo: " + MARKER.sub("", _last_user(body)).strip()


class UpstreamServer:
    def __init__(self, *, latency_ms: float = 0.0, reply: Reply | None = None,
                 modes: dict[str, str] | None = None, default_mode: str | None = None):
        self.latency_ms = latency_ms
        self.reply = reply or echo_reply
        self.modes = dict(modes or {})
        self.default_mode = default_mode
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.log: list[dict[str, Any]] = []  # one entry per chat request, in arrival order
        self._seen: dict[tuple[str, str, str], int] = {}

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight, "log": list(self.log)}

    # ---------------------------------------------------------------------------------------
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length") or 0)
                raw = await reader.readexactly(length) if length else b""
                keep = await self.route(method, path.split("?")[0], headers, raw, writer)
                if not keep or headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if not writer.transport.is_closing():
                writer.close()

    async def route(self, method: str, path: str, headers: dict[str, str], raw: bytes,
                    writer: asyncio.StreamWriter) -> bool:
        if path == "/stats":
            return await self.send(writer, 200, self.stats())
        if path == "/reset" and method == "POST":
            self.reset()
            return await self.send(writer, 200, {"ok": True})
        if path == "/v1/models":
            return await self.send(writer, 200, {"object": "list", "data": []})
        if path != "/v1/chat/completions" or method != "POST":
            return await self.send(writer, 404, {"error": {"message": f"no route {method} {path}"}})
        self.requests += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await self.chat(headers, raw, writer)
        finally:
            self.in_flight -= 1

    def pick_mode(self, headers: dict[str, str], body: dict[str, Any]) -> tuple[str | None, str | None]:
        model = str(body.get("model", ""))
        last = _last_user(body)
        marker = MARKER.search(last)
        spec = headers.get("x-upstream-mode") or (marker.group(1) if marker else None) \
            or self.modes.get(model) or self.default_mode
        if not spec:
            return None, None
        m = MODE.match(spec.strip())
        if not m:
            return "400", f"unknown upstream mode {spec!r}"
        if m.group("n") is not None:
            key = (model, last, spec)
            seen = self._seen.get(key, 0)
            self._seen[key] = seen + 1
            if seen >= int(m.group("n")):
                return None, None
        return m.group("name"), m.group("arg")

    async def chat(self, headers: dict[str, str], raw: bytes, writer: asyncio.StreamWriter) -> bool:
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return await self.send(writer, 400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}})
        mode, arg = self.pick_mode(headers, body)
        stream = bool(body.get("stream"))
        self.log.append({"t": time.monotonic(), "model": body.get("model"), "last_user": _last_user(body),
                         "mode": mode, "stream": stream})
        latency = float(headers.get("x-upstream-latency-ms") or self.latency_ms)
        if mode == "slow":
            latency = float(arg or 5) * 1000
        if latency:
            await asyncio.sleep(latency / 1000)
        if mode == "reset":
            writer.transport.abort()
            return False
        if mode == "malformed":
            return await self.send(writer, 200, b'{"id": "x", "choices": [ this is not json')
        if mode == "context":
            return await self.send(writer, 400, {"error": {
                "message": "This model's maximum context length is 8192 tokens.",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}})
        if mode == "429":
            return await self.send(writer, 429, {"error": {"message": "rate limited", "type": "rate_limit_error"}},
                                   {"retry-after": arg or "1"})
        if mode and mode.isdigit():
            status = int(mode)
            return await self.send(writer, status, {"error": {"message": arg or f"scripted {status}",
                                                              "type": "server_error" if status >= 500 else "invalid_request_error"}})
        answer = self.reply(body)
        answer = {"content": answer} if isinstance(answer, str) else answer
        completion = self.completion(body, answer)
        if stream:
            return await self.stream(writer, completion, body, cut=mode == "cut")
        if mode == "cut":
            data = orjson.dumps(completion)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
                         % len(data) + data[: len(data) // 2])
            await writer.drain()
            writer.transport.abort()
            return False
        return await self.send(writer, 200, completion)

    def completion(self, body: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        content = answer.get("content")
        calls = [{"id": f"call_{i}", "type": "function",
                  "function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], str)
                               else orjson.dumps(c["arguments"]).decode()}}
                 for i, c in enumerate(answer.get("tool_calls") or [])]
        prompt = sum(_tokens(m.get("content") or "") for m in body.get("messages") or []
                     if isinstance(m, dict) and isinstance(m.get("content"), str))
        completion_tokens = _tokens(content or "") + sum(_tokens(c["function"]["arguments"]) for c in calls)
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if calls:
            message["tool_calls"] = calls
        return {"id": f"chatcmpl-{self.requests}", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [{"index": 0, "message": message, "logprobs": None,
                             "finish_reason": "tool_calls" if calls else "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
                          "total_tokens": prompt + completion_tokens}}

    async def stream(self, writer: asyncio.StreamWriter, completion: dict[str, Any], body: dict[str, Any],
                     cut: bool) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                     b"transfer-encoding: chunked\r\n\r\n")
        base = {"id": completion["id"], "object": "chat.completion.chunk", "created": completion["created"],
                "model": completion["model"]}
        message = completion["choices"][0]["message"]
        content = message.get("content") or ""
        pieces = [content[i:i + 8] for i in range(0, len(content), 8)]
        chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                        "finish_reason": None}], "usage": None}]
        chunks += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}],
                    "usage": None} for p in pieces]
        for i, call in enumerate(message.get("tool_calls") or []):
            chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": i, "id": call["id"], "type": "function",
                 "function": {"name": call["function"]["name"], "arguments": call["function"]["arguments"]}}]},
                "finish_reason": None}], "usage": None})
        chunks.append({**base, "choices": [{"index": 0, "delta": {},
                                            "finish_reason": completion["choices"][0]["finish_reason"]}],
                       "usage": None})
        if (body.get("stream_options") or {}).get("include_usage"):
            chunks.append({**base, "choices": [], "usage": completion["usage"]})
        for n, chunk in enumerate(chunks):
            self._chunk(writer, b"data: " + orjson.dumps(chunk) + b"\n\n")
            if cut and n == 1:
                await writer.drain()
                writer.transport.abort()
                return False
        self._chunk(writer, b"data: [DONE]\n\n")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    @staticmethod
    def _chunk(writer: asyncio.StreamWriter, data: bytes) -> None:
        writer.write(b"%x\r\n" % len(data) + data + b"\r\n")

    @staticmethod
    async def send(writer: asyncio.StreamWriter, status: int, payload: Any,
                   headers: dict[str, str] | None = None) -> bool:
        data = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(data)}\r\n{extra}\r\n").encode()
        writer.write(head + data)
        await writer.drain()
        return True


class UpstreamURL(str):
    """The base URL (``http://127.0.0.1:PORT/v1``) with the server's counters attached."""

    server: UpstreamServer | None = None

    def stats(self) -> dict[str, Any]:
        if self.server is not None:
            return self.server.stats()
        import httpx
        return httpx.get(self.removesuffix("/v1") + "/stats").json()

    def reset(self) -> None:
        if self.server is not None:
            self.server.reset()
        else:
            import httpx
            httpx.post(self.removesuffix("/v1") + "/reset")


@contextmanager
def scripted_upstream(*, latency_ms: float = 0.0, reply: Reply | None = None, modes: dict[str, str] | None = None,
                      default_mode: str | None = None, subprocess: bool = False) -> Iterator[UpstreamURL]:
    """Run a scripted upstream for the duration of the block; yields its base URL.

    ``subprocess=True`` runs it in its own Python process (no GIL shared with the code under test;
    ``reply`` must then be None); counters are then read over HTTP from ``/stats``.
    """
    if subprocess:
        yield from _in_subprocess(latency_ms, modes, default_mode)
        return
    server = UpstreamServer(latency_ms=latency_ms, reply=reply, modes=modes, default_mode=default_mode)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        asyncio.set_event_loop(loop)
        srv = loop.run_until_complete(asyncio.start_server(server.handle, "127.0.0.1", 0, backlog=1024))
        holder["srv"] = srv
        holder["port"] = srv.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        srv.close()
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(srv.wait_closed())
        loop.close()

    thread = threading.Thread(target=serve, name="scripted-upstream", daemon=True)
    thread.start()
    if not ready.wait(10):
        raise RuntimeError("scripted upstream did not start")
    url = UpstreamURL(f"http://127.0.0.1:{holder['port']}/v1")
    url.server = server
    try:
        yield url
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _in_subprocess(latency_ms: float, modes: dict[str, str] | None, default_mode: str | None) -> Iterator[UpstreamURL]:
    import subprocess as sp
    args = [sys.executable, "-m", "sluice.testing.upstream", "--latency-ms", str(latency_ms)]
    for model, mode in (modes or {}).items():
        args += ["--mode", f"{model}={mode}"]
    if default_mode:
        args += ["--default-mode", default_mode]
    proc = sp.Popen(args, stdout=sp.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip() if proc.stdout else ""
        if not line.startswith("http://"):
            raise RuntimeError(f"scripted upstream subprocess did not start: {line!r}")
        yield UpstreamURL(line)
    finally:
        proc.terminate()
        proc.wait(10)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Scripted OpenAI-compatible upstream (a fake model for tests).")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--mode", action="append", default=[], help="MODEL=MODE")
    p.add_argument("--default-mode")
    a = p.parse_args(argv)
    server = UpstreamServer(latency_ms=a.latency_ms, modes=dict(m.split("=", 1) for m in a.mode),
                            default_mode=a.default_mode)

    async def run() -> None:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", a.port, backlog=1024)
        print(f"http://127.0.0.1:{srv.sockets[0].getsockname()[1]}/v1", flush=True)
        async with srv:
            await srv.serve_forever()

    try:
        import uvloop
        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
