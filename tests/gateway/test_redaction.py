"""Issue 10 item 3: an upstream that echoes the key Sluice sent it must not put that key in the
client's error body, the stored span, run rows or gate reports; client error bodies carry no
upstream URL or HTTP-library text (the span keeps the URL, redacted of secrets)."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from gateway_fixtures import make_release, serving, spans
from odd_upstream import odd_upstream
from sluice.providers.base import classify_status
from sluice.providers.openai_compat import env_value
from sluice.runner.record import RowOutput

CHAT = {"model": "d", "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture
def secret(monkeypatch):
    value = "sk-echo-" + uuid.uuid4().hex
    monkeypatch.setenv("SLUICE_TEST_ECHO_KEY", value)
    return value


def _echo(status: int):
    def answer(headers, body):
        said = {"error": {"message": f"invalid key {headers.get('authorization')} (you sent {json.dumps(body)[:40]})",
                          "code": "bad_key"}}
        return status, json.dumps(said).encode(), "application/json"
    return answer


@pytest.mark.parametrize("status", [401, 500])
def test_an_echoed_key_reaches_neither_the_client_nor_the_span(duckdb_store, tmp_path, secret, status):
    with odd_upstream(_echo(status)) as base:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", base, api_key_env="SLUICE_TEST_ECHO_KEY")
        with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "retries": 0}) as (url, _):
            r = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30)
    assert r.status_code in (401, 502)
    host = base.split("//", 1)[1].split("/", 1)[0]
    assert secret not in r.text and "Bearer sk-" not in r.text
    assert host not in r.text and "127.0.0.1" not in r.text
    assert "invalid key" in r.text and "m-primary" in r.text  # the upstream's reason, the model: still useful
    [span] = spans(duckdb_store)
    assert secret not in json.dumps(span) and "[redacted]" in span["attributes"]["@status_message"]
    assert host in span["attributes"]["@status_message"]  # the operator still sees where it failed


def test_a_connection_failure_shows_no_library_text_to_the_client(duckdb_store, tmp_path):
    ref = make_release(duckdb_store, tmp_path, "bot", "1", "http://127.0.0.1:9/v1")  # discard port: refused
    with serving(duckdb_store, {"deployments": {"d": {"stable": ref}}, "retries": 0}) as (url, _):
        r = httpx.post(url + "/v1/chat/completions", json=CHAT, timeout=30)
    assert r.status_code == 502
    message = r.json()["error"]["message"]
    assert "127.0.0.1" not in message and "Connect" not in message and "ssl" not in message
    assert "m-primary" in message


def test_run_rows_and_provider_errors_are_redacted(secret):
    assert env_value("SLUICE_TEST_ECHO_KEY", "api_key_env") == secret  # read once: now a known secret
    err = classify_status(500, {"error": {"message": f"got Bearer {secret} from you"}}, {}, "upstream m at http://x")
    assert secret not in err.message and "[redacted]" in err.message
    row = RowOutput(row_id="r", output=f"my key is {secret}", error=f"echo {secret}",
                    raw={"choices": [{"message": {"content": secret}}]})
    assert secret not in row.model_dump_json()
    sluice_key = "sluice_admin_0123456789ab_" + "A" * 43
    assert sluice_key not in RowOutput(row_id="r", error=f"echo {sluice_key}").error
