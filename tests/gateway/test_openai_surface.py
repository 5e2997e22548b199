"""The OpenAI surface beyond chat, with the official client: ``GET /v1/models/{id}``, OpenAI-shaped
404s for unsupported routes; ``_unknown`` alike in spans and Prometheus; ingest counters on
``/metrics``; fractional ``shed_retry_after_s``; duplicate YAML keys refused."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway_fixtures import make_release, serving, spans
from sluice.config import load_settings
from sluice.errors import ConfigError
from sluice.gateway.config import GatewaySettings
from sluice.gateway.shedding import Shedder
from sluice.testing.upstream import scripted_upstream


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture
def gateway(duckdb_store, tmp_path):
    with scripted_upstream() as up:
        ref = make_release(duckdb_store, tmp_path, "bot", "1", up)
        with serving(duckdb_store, {"deployments": {"support": {"stable": ref}}}) as (url, gw):
            yield url, gw


def test_models_retrieve(gateway):
    url, _ = gateway
    model = client(url).models.retrieve("support")
    assert (model.id, model.object, model.owned_by) == ("support", "model", "sluice")
    with pytest.raises(openai.NotFoundError) as e:
        client(url).models.retrieve("gpt-4o")
    assert "'gpt-4o' does not exist" in e.value.message and "support" in e.value.message
    assert e.value.body["code"] == "model_not_found"


def test_unsupported_routes_answer_an_openai_error_saying_what_is_supported(gateway):
    url, _ = gateway
    with pytest.raises(openai.NotFoundError) as e:
        client(url).embeddings.create(model="support", input="hello")
    assert "POST /v1/embeddings is not supported" in e.value.message
    assert "POST /v1/chat/completions" in e.value.message
    with pytest.raises(openai.NotFoundError) as e:
        client(url).completions.create(model="support", prompt="hello")
    assert "/v1/completions" in e.value.message
    r = httpx.post(url + "/v1/responses", json={"model": "support", "input": "hi"})
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "invalid_request_error" and "/v1/responses" in r.json()["error"]["message"]
    # the routes that exist still answer
    assert client(url).chat.completions.create(
        model="support", messages=[{"role": "user", "content": "hi"}]).choices[0].message.content
    assert httpx.post(url + "/v1/traces", content=ExportTraceServiceRequest().SerializeToString(),
                      headers={"content-type": "application/x-protobuf"}).status_code == 200


def test_unknown_model_is_unknown_in_spans_and_prometheus(duckdb_store, gateway):
    url, _ = gateway
    with pytest.raises(openai.NotFoundError):
        client(url).chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])
    text = httpx.get(url + "/metrics").text
    assert 'sluice_gateway_requests_total{deployment="_unknown",route="none",status="404"} 1' in text
    r = httpx.post(url + "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400
    gateway[1].spans.flush()
    for _ in range(200):  # gateway spans are fire-and-forget: wait (bounded, 10 s) for the writer
        if len(spans(duckdb_store)) >= 2:
            break
        time.sleep(0.05)
    deployments = sorted((s["deployment"], s["attributes"].get("sluice.requested_model", "")) for s in spans(duckdb_store))
    assert deployments == [("_unknown", ""), ("_unknown", "nope")]


def test_ingest_counters_on_metrics(gateway):
    url, _ = gateway
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    for i in range(3):
        sp = ss.spans.add()
        sp.trace_id, sp.span_id, sp.name = (i + 1).to_bytes(16, "big"), (i + 1).to_bytes(8, "big"), "s"
    bad = ss.spans.add()
    bad.trace_id, bad.span_id = bytes(16), b"\x01" * 8  # all-zero trace id: rejected
    headers = {"content-type": "application/x-protobuf"}
    assert httpx.post(url + "/v1/traces", content=req.SerializeToString(), headers=headers).status_code == 200
    assert httpx.post(url + "/v1/traces", content=b"\xff\xff", headers=headers).status_code == 400
    assert httpx.post(url + "/v1/traces", content=b"x", headers={"content-type": "text/plain"}).status_code == 415
    text = httpx.get(url + "/metrics").text
    for line in ("sluice_ingest_spans_received_total 3", "sluice_ingest_spans_rejected_total 1",
                 "sluice_ingest_spans_dropped_total 0", 'sluice_ingest_requests_total{outcome="ok"} 1',
                 'sluice_ingest_requests_total{outcome="bad_request"} 1',
                 'sluice_ingest_requests_total{outcome="unsupported_media_type"} 1', "# TYPE sluice_ingest_queue_spans gauge"):
        assert line in text, line


@pytest.mark.parametrize("seconds, after, after_ms", [(0.2, "1", "200"), (3, "3", "3000"), (1.5, "2", "1500")])
def test_shed_retry_after_keeps_fractions(seconds, after, after_ms):
    headers = dict(Shedder(GatewaySettings(max_in_flight=1, shed_retry_after_s=seconds))._headers)
    # the official clients read retry-after-ms first: 0.2 s stays 0.2 s; retry-after is whole seconds (HTTP)
    assert (headers[b"retry-after"], headers[b"retry-after-ms"]) == (after.encode(), after_ms.encode())


def test_duplicate_yaml_keys_are_refused_with_file_and_line(tmp_path):
    path = tmp_path / "sluice.yaml"
    path.write_text("gateway:\n  max_in_flight: 5\nstore: duckdb:///x.duckdb\ngateway:\n  max_in_flight: 9\n")
    with pytest.raises(ConfigError) as e:
        load_settings(path, environ={})
    assert str(e.value) == f"{path}:4: duplicate key 'gateway' (first set at line 1)"
