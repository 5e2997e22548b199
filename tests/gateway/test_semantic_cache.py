"""The semantic cache through the gateway (real MiniLM embeddings, offline): paraphrases hit on
low-risk deployments only, keys separate tenants and canary from stable, streams replay as SSE,
hits and misses are traced; with Redis, replicas share entries."""

from __future__ import annotations

import os
import time
import uuid

import httpx
import numpy as np
import openai
import pytest

from gateway_fixtures import make_release, serving, spans
from sluice.gateway.config import SemanticCacheSettings
from sluice.gateway.routing import bucket
from sluice.gateway.semantic_cache import SemanticCache, cache_key
from sluice.testing.upstream import scripted_upstream

ASK = "How do I reset my password?"
PARAPHRASE = "how can i reset my password"
OTHER = "What is your refund policy for annual plans?"
CACHE = {"enabled": True, "threshold": 0.9, "ttl_s": 600}


def ask(url, text, *, model="d", user="u1", tenant=None, stream=False):
    headers = {"x-sluice-tenant": tenant} if tenant else {}
    body = {"model": model, "user": user, "messages": [{"role": "user", "content": text}], "stream": stream}
    r = httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=20)
    assert r.status_code == 200, r.text
    return r


def test_paraphrase_is_served_from_cache_on_low_risk_routes(duckdb_store, tmp_path):
    with scripted_upstream() as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up)
        settings = {"deployments": {"d": {"stable": ref, "low_risk": True}, "risky": {"stable": ref}},
                    "semantic_cache": CACHE}
        with serving(duckdb_store, settings) as (url, gw):
            first = ask(url, ASK)
            hit = ask(url, PARAPHRASE)
            assert first.headers["x-sluice-route"] == "stable" and hit.headers["x-sluice-route"] == "cache"
            assert hit.headers["x-sluice-release"] == first.headers["x-sluice-release"]
            assert hit.json()["choices"][0]["message"]["content"] == f"echo: {ASK}"
            assert hit.json()["usage"]["total_tokens"] == 0
            assert ask(url, OTHER).headers["x-sluice-route"] == "stable"  # not similar enough
            assert ask(url, PARAPHRASE, tenant="acme").headers["x-sluice-route"] == "stable"  # another tenant
            # the same question on a deployment not marked low-risk never touches the cache
            assert [ask(url, ASK, model="risky").headers["x-sluice-route"] for _ in range(2)] == ["stable"] * 2
            # streamed: a hit replays the cached answer as SSE
            with openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0).chat.completions \
                    .with_streaming_response.create(model="d", user="u2", stream=True,
                                                    messages=[{"role": "user", "content": PARAPHRASE}]) as resp:
                assert resp.headers["x-sluice-route"] == "cache"
                text = "".join(c.choices[0].delta.content or "" for c in resp.parse() if c.choices)
            assert text == f"echo: {ASK}"
            metrics = httpx.get(url + "/metrics").text
        assert [e["last_user"] for e in up.stats()["log"]] == [ASK, OTHER, PARAPHRASE, ASK, ASK]
    assert 'sluice_gateway_cache_lookups_total{deployment="d",result="hit"} 2' in metrics
    assert 'sluice_gateway_cache_lookups_total{deployment="d",result="miss"} 3' in metrics
    recorded = [s for s in spans(duckdb_store) if s["deployment"] == "d"]
    assert [s["attributes"]["sluice.cache"] for s in recorded] == ["miss", "hit", "miss", "miss", "hit"]
    assert [s["cache_hit"] for s in recorded] == [False, True, False, False, True]
    assert all(s["route"] == "cache" for s in recorded if s["cache_hit"])


def test_streamed_answers_are_cached_too(duckdb_store, tmp_path):
    with scripted_upstream() as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up)
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref, "low_risk": True}},
                                    "semantic_cache": CACHE}) as (url, _):
            ask(url, ASK, stream=True)
            hit = ask(url, PARAPHRASE)
        assert up.stats()["requests"] == 1
    assert hit.headers["x-sluice-route"] == "cache"
    assert hit.json()["choices"][0]["message"]["content"] == f"echo: {ASK}"


def test_canary_and_stable_never_share_answers(duckdb_store, tmp_path):
    with scripted_upstream() as up:
        stable = make_release(duckdb_store, tmp_path, "bot", "1", up, model="m-stable")
        canary = make_release(duckdb_store, tmp_path, "bot", "2", up, model="m-canary")
        settings = {"deployments": {"d": {"stable": stable, "low_risk": True,
                                          "canary": {"release": canary, "weight_bp": 5000}}},
                    "semantic_cache": CACHE}
        with serving(duckdb_store, settings) as (url, gw):
            by_route: dict[str, list[str]] = {}
            for i in range(40):  # users of each arm (the sticky split: bucket(salt, user) < weight)
                by_route.setdefault("canary" if bucket("d", f"user-{i}") < 5000 else "stable", []).append(f"user-{i}")
            s_user, c_user = by_route["stable"][0], by_route["canary"][0]
            first = ask(url, ASK, user=s_user)
            other_arm = ask(url, PARAPHRASE, user=c_user)
            same_arm = ask(url, PARAPHRASE, user=by_route["stable"][1])
            again_canary = ask(url, ASK, user=by_route["canary"][1])
    dep = gw.deployments["d"]
    assert first.headers["x-sluice-route"] == "stable"
    assert other_arm.headers["x-sluice-route"] == "canary"  # the stable answer was not served to a canary user
    assert other_arm.json()["model"] == "m-canary"
    assert same_arm.headers["x-sluice-route"] == "cache" and same_arm.json()["model"] == "m-stable"
    assert same_arm.headers["x-sluice-release"] == dep.stable.digest
    assert again_canary.headers["x-sluice-route"] == "cache" and again_canary.json()["model"] == "m-canary"
    assert again_canary.headers["x-sluice-release"] == dep.canary.digest


def test_key_covers_release_tenant_params_and_history():
    body = {"model": "d", "temperature": 0.2, "messages": [{"role": "user", "content": "q"}]}
    base = cache_key("d", "sha256:a", "", body)
    assert base[1] == "q"
    assert cache_key("d", "sha256:b", "", body)[0] != base[0]
    assert cache_key("d", "sha256:a", "acme", body)[0] != base[0]
    assert cache_key("d", "sha256:a", "", {**body, "temperature": 0.3})[0] != base[0]
    assert cache_key("d", "sha256:a", "", {**body, "user": "someone", "stream": True})[0] == base[0]
    longer = {**body, "messages": [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "a"},
                                   {"role": "user", "content": "q"}]}
    assert cache_key("d", "sha256:a", "", longer)[0] != base[0]
    assert cache_key("d", "sha256:a", "", {**body, "messages": [{"role": "assistant", "content": "q"}]}) is None


class FixedEmbedder:
    dim = 384

    def embed(self, texts):
        rng = np.random.default_rng(abs(hash(texts[0])) % 2**32)
        v = rng.standard_normal((1, 384)).astype(np.float32)
        return v / np.linalg.norm(v)


def _redis_or_skip(url: str):
    """A Redis client; without a server the test is skipped, except with CI=true, where it fails."""
    ci = os.environ.get("CI", "").lower() == "true"
    try:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2)
        client.ping()
    except Exception as e:  # noqa: BLE001 - no client library or no server
        if ci:
            pytest.fail(f"Redis not usable at {url}: {e} (CI=true: Redis tests must run)")
        pytest.skip(f"Redis not reachable at {url}: {e}")
    return client


def test_replicas_share_entries_through_redis():
    url = "redis://127.0.0.1:6379/0"
    client = _redis_or_skip(url)
    stream = f"sluice:test:{uuid.uuid4().hex}"
    settings = SemanticCacheSettings(enabled=True, threshold=0.99, redis_url=url, redis_stream=stream)
    a, b = SemanticCache(settings, FixedEmbedder()), SemanticCache(settings, FixedEmbedder())
    body = {"model": "d", "messages": [{"role": "user", "content": "shared question"}]}
    try:
        a.start()
        b.start()
        miss = a._lookup(*_args(body))
        assert miss.answer is None
        a.store(miss, "sha256:r", {"message": {"role": "assistant", "content": "from A"}, "finish_reason": "stop",
                                   "model": "m"})
        deadline = time.monotonic() + 5
        while b.shared_in == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        hit = b._lookup(*_args(body))
        assert hit.answer["message"]["content"] == "from A" and a.shared_in == 0  # A skips its own entry
        late = SemanticCache(settings, FixedEmbedder())  # a replica started later reads the stream back
        late.start()
        assert late._lookup(*_args(body)).answer["message"]["content"] == "from A"
        late.close()
    finally:
        a.close()
        b.close()
        client.delete(stream)


def _args(body):
    shelf, question = cache_key("d", "sha256:r", "", body)
    return shelf, "sha256:r", question
