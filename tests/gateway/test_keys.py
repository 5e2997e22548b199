"""Key scopes at the gateway: gateway keys call the chat API and nothing else, ingest keys cannot
call the gateway, admin keys may do everything (pins included)."""

from __future__ import annotations

import httpx
import pytest

from gateway_fixtures import make_release, serving
from sluice.auth.keys import KeyRing, create_key, revoke_key
from sluice.errors import ConfigError

CHAT = {"model": "d", "messages": [{"role": "user", "content": "hello"}]}


def auth(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


def test_scopes(duckdb_store, tmp_path, upstream):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", upstream)
    _, admin = create_key(duckdb_store, "ops", "admin")
    _, ingest = create_key(duckdb_store, "collector", "ingest")
    _, gateway = create_key(duckdb_store, "app", "gateway")
    with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}}) as (url, gw):
        def call(method: str, path: str, key: str, headers: dict | None = None, **kw) -> int:
            return httpx.request(method, url + path, headers={**auth(key), **(headers or {})}, timeout=10,
                                 **kw).status_code

        pin = {"x-sluice-release": "bot@1"}
        # the gateway key: chat and models only
        assert call("POST", "/v1/chat/completions", gateway, json=CHAT) == 200
        assert call("GET", "/v1/models", gateway) == 200
        assert call("POST", "/v1/chat/completions", gateway, json=CHAT, headers=pin) == 403
        assert call("POST", "/v1/traces", gateway, json={"resourceSpans": []}) == 403
        assert call("GET", "/api/metrics", gateway) == 403
        # the ingest key: not the gateway
        r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=auth(ingest), timeout=10)
        assert r.status_code == 403 and r.json()["error"]["code"] == "scope_forbidden"
        assert call("GET", "/v1/models", ingest) == 403
        assert call("POST", "/v1/traces", ingest, json={"resourceSpans": []}) == 200
        # admin: everything
        assert call("POST", "/v1/chat/completions", admin, json=CHAT, headers=pin) == 200
        assert call("GET", "/v1/models", admin) == 200
        assert call("GET", "/api/metrics", admin) == 200
        assert call("POST", "/v1/traces", admin, json={"resourceSpans": []}) == 200


def test_gateway_keys_are_hashed_and_revocable(duckdb_store):
    rec, secret = create_key(duckdb_store, "app", "gateway")
    assert secret.startswith(f"sluice_gateway_{rec.id}_")
    [(stored,)] = duckdb_store.db.query("SELECT secret_hash FROM api_keys WHERE id = ?", [rec.id])
    assert secret.split("_", 3)[3] not in stored and stored.startswith("sha256:")
    assert KeyRing(duckdb_store).verify(secret).scope == "gateway"
    revoke_key(duckdb_store, rec.id)
    assert KeyRing(duckdb_store).verify(secret) is None


def test_unknown_scope_is_refused(duckdb_store):
    with pytest.raises(ConfigError, match="ingest, admin, gateway or read"):
        create_key(duckdb_store, "x", "root")
