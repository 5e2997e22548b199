"""The gateway's semantic cache: answers reused for near-identical questions on low-risk routes.

Only deployments with ``low_risk: true`` use it. The **key** is exact — deployment, the digest of
the release that answers (so canary answers never reach stable users and vice versa), the tenant
(a header or ``metadata`` field), the request's parameters (everything but the messages), and a
hash of the conversation before the last user message. Within a key the **last user message** is
matched semantically: its MiniLM embedding (``get_embedder("minilm")``, int8 ONNX, offline) must
reach ``threshold`` cosine similarity with a stored question whose entry is younger than ``ttl_s``.

Embedding and search run in one worker thread (``lookup``), never on the event loop, so a cache
lookup does not hold up other requests. Entries live in a bounded in-process ``SemanticIndex``.
With ``redis_url`` every entry is also appended to a Redis stream that every replica tails into
its own index (and reads back at start-up), so replicas share answers without a network round
trip on the lookup path.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from sluice.gateway.config import SemanticCacheSettings
from sluice.gateway.semantic_index import SemanticIndex

log = logging.getLogger("sluice.gateway.cache")
_NOT_KEYED = frozenset({"messages", "model", "metadata", "stream", "stream_options", "user"})


@dataclass(slots=True)
class Lookup:
    """One request's cache lookup: the key, the embedded question and, on a hit, the answer."""

    shelf: str
    release: str  # digest of the release whose answers this key holds
    vector: np.ndarray | None
    answer: dict[str, Any] | None = None
    similarity: float | None = None


def cache_key(deployment: str, release_digest: str, tenant: str, body: dict[str, Any]) -> tuple[str, str] | None:
    """(key, question) — None when the request has no final user text message to match on."""
    messages = body.get("messages") or []
    last = messages[-1] if messages else None
    if not isinstance(last, dict) or last.get("role") != "user" or not isinstance(last.get("content"), str):
        return None
    params = {k: v for k, v in body.items() if k not in _NOT_KEYED}
    h = hashlib.blake2b(digest_size=16)
    for part in (deployment, release_digest, tenant):
        h.update(part.encode() + b"\x1f")
    h.update(orjson.dumps(params, option=orjson.OPT_SORT_KEYS) + b"\x1f")
    h.update(orjson.dumps(messages[:-1], option=orjson.OPT_SORT_KEYS))
    return f"{deployment}/{release_digest}/{h.hexdigest()}", last["content"]


class SemanticCache:
    def __init__(self, settings: SemanticCacheSettings, embedder: Any | None = None):
        self.settings = settings
        self._embedder = embedder
        self.index = SemanticIndex(max_entries=settings.max_entries, max_shelves=settings.max_keys)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sluice-cache")
        self._redis: Any = None
        self._tail: threading.Thread | None = None
        self._stop = threading.Event()
        self._origin = hashlib.blake2b(str(time.time_ns()).encode() + str(id(self)).encode(),
                                       digest_size=8).hexdigest()
        self.stored = 0
        self.shared_in = 0

    # lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Load the embedding model and, with Redis, read the shared entries and start tailing."""
        if self._embedder is None:
            from sluice.evals.backends.embedding import get_embedder

            self._embedder = get_embedder(self.settings.embedder)
        if self.settings.redis_url and self._tail is None:
            import redis

            self._redis = redis.Redis.from_url(self.settings.redis_url, socket_timeout=5)
            last, more = "0-0", True
            while more:  # read back what other replicas shared before this one started
                last, more = self._read_shared(last, block_ms=None)
            self._tail = threading.Thread(target=self._follow, args=(last,), name="sluice-cache-redis", daemon=True)
            self._tail.start()

    def close(self) -> None:
        self._stop.set()
        if self._tail is not None:
            self._tail.join(timeout=5)
            self._tail = None
        if self._redis is not None:
            self._redis.close()
            self._redis = None
        self._pool.shutdown(wait=True)

    # request path ----------------------------------------------------------------------------
    def tenant(self, headers: dict[str, str], body: dict[str, Any]) -> str:
        value = headers.get(self.settings.tenant_header.lower())
        if not value:
            meta = body.get("metadata")
            value = meta.get(self.settings.tenant_metadata_key) if isinstance(meta, dict) else None
        return str(value) if value not in (None, "") else ""

    async def lookup(self, deployment: str, release_digest: str, tenant: str, body: dict[str, Any]) -> Lookup | None:
        """None when the request cannot be cached; else a ``Lookup`` whose ``answer`` is set on a hit."""
        keyed = cache_key(deployment, release_digest, tenant, body)
        if keyed is None:
            return None
        shelf, question = keyed
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._lookup, shelf, release_digest,
                                                                question)

    def _lookup(self, shelf: str, release: str, question: str) -> Lookup:
        vector = self._embedder.embed([question])[0]
        match = self.index.search(shelf, vector, self.settings.threshold)
        if match is None:
            return Lookup(shelf, release, vector)
        return Lookup(shelf, release, vector, match.value, match.similarity)

    def store(self, lookup: Lookup, release: str, answer: dict[str, Any]) -> None:
        """Keep an answer of ``release`` for later lookups (and share it through Redis); never blocks.
        An answer from another release (a canary that fell back to stable) is not kept under this key."""
        if lookup.vector is None or release != lookup.release:
            return
        self.index.add(lookup.shelf, lookup.vector, answer, self.settings.ttl_s)
        self.stored += 1
        if self._redis is not None:
            self._pool.submit(self._publish, lookup.shelf, lookup.vector, answer)

    # redis -------------------------------------------------------------------------------------
    def _publish(self, shelf: str, vector: np.ndarray, answer: dict[str, Any]) -> None:
        try:
            self._redis.xadd(self.settings.redis_stream, {
                "origin": self._origin, "shelf": shelf, "vector": np.asarray(vector, np.float32).tobytes(),
                "answer": orjson.dumps(answer), "expires": repr(time.time() + self.settings.ttl_s)},
                maxlen=self.settings.max_entries * self.settings.max_keys, approximate=True)
        except Exception:  # noqa: BLE001 - sharing is best effort; the local entry is kept
            log.warning("semantic cache: could not publish to Redis", exc_info=True)

    def _read_shared(self, after: str, block_ms: int | None) -> tuple[str, bool]:
        """Index entries after ``after``; (last id read, whether a full batch came back)."""
        reply = self._redis.xread({self.settings.redis_stream: after}, count=1000, block=block_ms)
        for _, entries in reply or ():
            for entry_id, fields in entries:
                after = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                if fields.get(b"origin", b"").decode() == self._origin:
                    continue
                remaining = float(fields[b"expires"]) - time.time()
                if remaining <= 0:
                    continue
                vector = np.frombuffer(fields[b"vector"], dtype=np.float32)
                self.index.add(fields[b"shelf"].decode(), vector, orjson.loads(fields[b"answer"]), remaining)
                self.shared_in += 1
        return after, sum(len(e) for _, e in reply or ()) >= 1000

    def _follow(self, last: str) -> None:
        while not self._stop.is_set():
            try:
                last, _ = self._read_shared(last, block_ms=250)
            except Exception:  # noqa: BLE001 - keep following after a Redis hiccup
                log.warning("semantic cache: Redis read failed", exc_info=True)
                self._stop.wait(1.0)


# answers ---------------------------------------------------------------------------------------
def answer_of(message: dict[str, Any], finish_reason: str | None, model: str | None) -> dict[str, Any]:
    """What the cache keeps of an answer: the assistant message, finish reason and model."""
    kept = {"role": "assistant", "content": message.get("content")}
    if message.get("tool_calls"):
        kept["tool_calls"] = message["tool_calls"]
    return {"message": kept, "finish_reason": finish_reason or "stop", "model": model or ""}


_NO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}  # a hit costs no tokens


def replay_completion(answer: dict[str, Any]) -> bytes:
    return orjson.dumps({
        "id": "chatcmpl-cache-" + hashlib.blake2b(str(time.time_ns()).encode(), digest_size=8).hexdigest(),
        "object": "chat.completion", "created": int(time.time()), "model": answer["model"],
        "choices": [{"index": 0, "message": {**answer["message"], "refusal": None},
                     "finish_reason": answer["finish_reason"], "logprobs": None}],
        "usage": _NO_USAGE})


def replay_events(answer: dict[str, Any], include_usage: bool) -> bytes:
    """The cached answer as one SSE body: role, content, tool calls, finish, [usage], [DONE]."""
    base = {"id": "chatcmpl-cache-" + hashlib.blake2b(str(time.time_ns()).encode(), digest_size=8).hexdigest(),
            "object": "chat.completion.chunk", "created": int(time.time()), "model": answer["model"]}
    msg = answer["message"]
    delta: dict[str, Any] = {"role": "assistant", "content": msg.get("content") or ""}
    chunks = [{**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}]
    if msg.get("tool_calls"):
        calls = [{"index": i, **c} for i, c in enumerate(msg["tool_calls"])]
        chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": calls}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": answer["finish_reason"]}]})
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _NO_USAGE})
    return b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
