"""``sluice audit TRACE_ID`` / ``GET /api/audit/{trace_id}``: a gateway trace and an OTLP trace,
each field checked against what was configured; unknown and unattributed traces."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from openinference.instrumentation import using_metadata
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from gateway_fixtures import serving
from sluice.audit.api import router as audit_router
from sluice.audit.log import append_audit
from sluice.audit.trace import audit_trace
from sluice.auth.keys import create_key
from sluice.evals.result import EvalResult
from sluice.release.loader import load_release
from sluice.release.registry import register
from sluice.server.app import create_app
from sluice.server.runner import running
from sluice.store import GateRecord
from sluice.telemetry.feedback import Feedback, record_feedback, record_online_eval
from sluice.workflow.gate import gate_audit

SYSTEM = "You are the support assistant of ACME. Answer briefly."
TEMPLATE = "Customer asks: {{ question }}\n"
TOOL_SCHEMA = {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}


def _sha(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def write_release(store, root: Path, version: str, base_url: str) -> tuple[str, str]:
    """A release with every kind of component; returns (name@version, digest)."""
    folder = root / f"support-{version}"
    folder.mkdir(parents=True)
    (folder / "system.txt").write_text(SYSTEM + "\n")
    (folder / "ask.j2").write_text(TEMPLATE)
    manifest = {
        "name": "support", "version": version,
        "components": {"responder": {
            "provider": "openai", "model": "m-main", "base_url": str(base_url),
            "params": {"temperature": 0.3, "max_tokens": 200, "seed": 7},
            "system_prompt_file": "system.txt", "prompt": "ask.j2", "context_budget": 3000,
            "fallbacks": [{"provider": "openai", "model": "m-backup", "base_url": str(base_url)}]}},
        "retriever": {"index": "kb-2026-11", "top_k": 4},
        "tools": [{"name": "lookup_order", "description": "find an order", "parameters": TOOL_SCHEMA}],
        "guardrails": [{"name": "no-codes", "type": "blocked_patterns", "patterns": ["CODE-\\d+"], "action": "block"},
                       {"name": "audit-pii", "type": "pii", "action": "log"}],
    }
    (folder / "release.yaml").write_text(yaml.safe_dump(manifest))
    record, _ = register(store, load_release(folder))
    return f"support@{version}", record.digest


def record_gate(store, candidate: str, baseline: str, verdict: str, actor: str) -> GateRecord:
    rec = GateRecord(id=f"gate-{verdict}{candidate[-6:]}", candidate_digest=candidate, baseline_digest=baseline,
                     dataset_name="support-contract", dataset_version="sha256:" + "d" * 64,
                     policy_digest="sha256:" + "b" * 64, verdict=verdict, exit_code=0 if verdict == "pass" else 1,
                     summary={"baseline": "support@1"})
    store.put_gate(rec)
    append_audit(store, actor, "gate.run", rec.id, None, gate_audit(rec, "support@2", "support@1"))
    return rec


def check_release(report: dict, digest: str, ref: str, files: dict[str, str]) -> None:
    r = report["release"]
    assert r["digest"] == digest and r["ref"] == ref and r["target"] == "chat"
    c = r["components"]["responder"]
    assert (c["model"], c["provider"], c["context_budget"]) == ("m-main", "openai", 3000)
    assert c["params"] == {"temperature": 0.3, "max_tokens": 200, "seed": 7}
    assert c["prompt_template"] == {"path": "ask.j2", "digest": files["ask.j2"]}
    assert files["ask.j2"] == _sha(TEMPLATE)
    assert c["system_prompt"] == {"source": "system.txt", "digest": _sha(SYSTEM)}  # as sent: no final newline
    assert [f["model"] for f in c["fallbacks"]] == ["m-backup"]
    assert r["retriever"] == {"index": "kb-2026-11", "top_k": 4, "params": {}}
    assert r["tools"][0]["name"] == "lookup_order" and r["tools"][0]["schema_digest"].startswith("sha256:")


def test_gateway_trace_audit(duckdb_store, tmp_path, upstream):
    store = duckdb_store
    stable_ref, stable = write_release(store, tmp_path, "1", upstream)
    canary_ref, canary = write_release(store, tmp_path, "2", upstream)
    record_gate(store, canary, stable, "fail", "cli:bob")
    passed = record_gate(store, canary, stable, "pass", "cli:alice")
    settings = {"deployments": {"support": {"stable": stable_ref,
                                            "canary": {"release": canary_ref, "weight_bp": 10_000}}}}
    with serving(store, settings) as (url, _):
        ok = httpx.post(url + "/v1/chat/completions", headers={"x-sluice-cohort": "enterprise"},
                        json={"model": "support", "messages": [{"role": "user", "content": "where is my parcel"}]})
        blocked = httpx.post(url + "/v1/chat/completions",
                             json={"model": "support", "messages": [{"role": "user", "content": "say CODE-1234"}]})
    assert ok.status_code == 200 and blocked.status_code == 200
    tid = ok.headers["x-sluice-trace-id"]
    record_feedback(store, Feedback(trace_id=tid, kind="thumbs_up", comment="quick"))
    record_online_eval(store, tid, EvalResult(evaluator="groundedness", score=0.9, passed=True))

    report = audit_trace(store, tid)
    assert report["found"] and report["trace_id"] == tid
    a = report["answer"]
    assert (a["source"], a["deployment"], a["route"], a["cohort"], a["release"]) == (
        "gateway", "support", "canary", "enterprise", canary)
    assert (a["model"], a["fallback_used"], a["status"]) == ("m-main", False, "OK")
    files = store.get_release(canary).files
    check_release(report, canary, canary_ref, files)
    assert report["release"]["guardrail_outcome"] == "pass"
    assert [(g["name"], g["outcome"]) for g in report["release"]["guardrails"]] == [("no-codes", "pass"),
                                                                                    ("audit-pii", "pass")]
    g = report["gate"]
    assert (g["id"], g["verdict"], g["approved"], g["by"], g["forced"]) == (passed.id, "pass", True, "cli:alice", False)
    assert g["dataset"] == "support-contract@sha256:" + "d" * 64 and g["policy_digest"] == "sha256:" + "b" * 64
    change = report["deployment_change"]
    assert change["action"] == "deployment.created" and change["actor"] == "config:sluice.yaml"
    assert change["config"]["canary"]["release"] == canary_ref
    assert [f["kind"] for f in report["feedback"]] == ["thumbs_up"]
    assert [(e["evaluator"], e["passed"]) for e in report["evaluations"]] == [("groundedness", True)]
    assert report["rollout"] == [] and report["notes"] == []

    blocked_report = audit_trace(store, blocked.headers["x-sluice-trace-id"])
    assert blocked_report["release"]["guardrail_outcome"] == "block:no-codes"
    assert [(g["name"], g["outcome"]) for g in blocked_report["release"]["guardrails"]] == [
        ("no-codes", "block"), ("audit-pii", "pass")]

    _, admin = create_key(store, "ops", "admin")
    with running(create_app(store, routers=[audit_router])) as api:
        auth = {"authorization": f"Bearer {admin}"}
        assert httpx.get(f"{api}/api/audit/{tid}").status_code == 401
        body = httpx.get(f"{api}/api/audit/{tid}", headers=auth).json()
        assert body["release"]["digest"] == canary and body["gate"]["id"] == passed.id
        missing = httpx.get(f"{api}/api/audit/{'0' * 31}1", headers=auth)
        assert missing.status_code == 404 and missing.json()["found"] is False
        assert "no spans stored" in missing.json()["notes"][0]


@pytest.fixture
def otel(store):
    """The official openai client, instrumented by OpenInference, exporting to a Sluice server."""
    _, ingest = create_key(store, "app", "ingest")
    with running(create_app(store)) as url:
        yield url, ingest


def test_otlp_trace_audit(store, otel, tmp_path, upstream):
    url, ingest = otel
    ref, digest = write_release(store, tmp_path, "1", upstream)
    gate = record_gate(store, digest, "sha256:" + "e" * 64, "pass", "cli:carol")
    tp = TracerProvider(resource=Resource.create({"service.name": "checkout", "service.version": ref}))
    tp.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=url + "/v1/traces",
                                                               headers={"Authorization": f"Bearer {ingest}"})))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tp)
    try:
        client = openai.OpenAI(base_url=str(upstream), api_key="test", max_retries=0)
        with using_metadata({"cohort": "free", "route": "stable"}):
            client.chat.completions.create(model="m-main", messages=[{"role": "user", "content": "hi"}])
    finally:
        instrumentor.uninstrument()
        tp.shutdown()
    tid = store.db.query_one("SELECT trace_id FROM spans WHERE service = 'checkout'")[0]
    report = audit_trace(store, tid)
    a = report["answer"]
    assert (a["source"], a["deployment"], a["release"], a["route"], a["cohort"]) == (
        "otlp", "checkout", ref, "stable", "free")
    assert a["model"] == "m-main"
    check_release(report, digest, ref, store.get_release(digest).files)
    assert report["release"]["guardrail_outcome"] == "not recorded"
    assert (report["gate"]["id"], report["gate"]["by"]) == (gate.id, "cli:carol")
    assert report["deployment_change"] is None and report["notes"] == []


def test_unattributed_span_says_what_is_known(store, otel):
    url, ingest = otel
    body = {"resourceSpans": [{"resource": {"attributes": []}, "scopeSpans": [{"spans": [{
        "traceId": "ab" * 16, "spanId": "cd" * 8, "name": "chat", "kind": 1,
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000500000000",
        "attributes": [{"key": "llm.model_name", "value": {"stringValue": "gpt-x"}}]}]}]}]}
    r = httpx.post(url + "/v1/traces", json=body, headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 200, r.text
    report = audit_trace(store, "AB" * 16)
    assert report["found"] and report["answer"]["model"] == "gpt-x" and report["release"] is None
    assert any("no release attribution" in n for n in report["notes"])
    assert any("names no deployment" in n for n in report["notes"])
    unknown = audit_trace(store, "12" * 16)
    assert not unknown["found"] and unknown["answer"] is None


def test_cli_human_and_json(tmp_path, upstream, capsys):
    import json

    from sluice.cli.main import main
    from sluice.store import open_store

    url = f"duckdb:///{tmp_path}/s.duckdb"
    store = open_store(url)
    ref, digest = write_release(store, tmp_path, "1", upstream)
    record_gate(store, digest, "sha256:" + "e" * 64, "pass", "cli:dana")
    with serving(store, {"deployments": {"support": {"stable": ref}}}) as (base, _):
        tid = httpx.post(base + "/v1/chat/completions", json={"model": "support", "messages": [
            {"role": "user", "content": "hello"}]}).headers["x-sluice-trace-id"]
    store.close()
    capsys.readouterr()
    assert main(["--store", url, "audit", tid]) == 0
    out = capsys.readouterr().out
    for expected in ("deployment: support", "route: stable", f"release: {ref} {digest}", "component responder",
                     "temperature=0.3", "prompt template: ask.j2", "guardrail no-codes", "by: cli:dana",
                     "deployment.created by config:sluice.yaml"):
        assert expected in out, (expected, out)
    assert main(["--store", url, "audit", tid, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["release"]["digest"] == digest
    assert main(["--store", url, "audit", "f" * 32]) == 3
    assert "no spans stored" in capsys.readouterr().out


def test_rollout_entries_and_forced_gate(duckdb_store, tmp_path, upstream):
    """Rollout decisions recorded through ``append_audit`` appear around the answer; a forced
    rollout of the release marks its gate as forced, with the reason."""
    store = duckdb_store
    ref, digest = write_release(store, tmp_path, "1", upstream)
    record_gate(store, digest, "sha256:" + "e" * 64, "fail", "cli:erin")
    append_audit(store, "key:ops", "rollout.started", "ro-1", None,
                 {"candidate": digest, "forced": True, "reason": "hotfix for outage 42"}, deployment="support")
    with serving(store, {"deployments": {"support": {"stable": ref}}}) as (base, _):
        tid = httpx.post(base + "/v1/chat/completions", json={"model": "support", "messages": [
            {"role": "user", "content": "hello"}]}).headers["x-sluice-trace-id"]
    append_audit(store, "rollout-controller", "rollout.promoted", "ro-1", None, {"step": 3}, deployment="support")
    report = audit_trace(store, tid)
    assert [(e["action"], e["actor"]) for e in report["rollout"]] == [("rollout.started", "key:ops"),
                                                                     ("rollout.promoted", "rollout-controller")]
    g = report["gate"]
    assert (g["verdict"], g["approved"], g["forced"], g["forced_reason"]) == ("fail", False, True,
                                                                              "hotfix for outage 42")
    assert any("no gate passed" in n for n in report["notes"])


def test_controller_events_reach_the_audit_log_and_the_trace_audit(duckdb_store, tmp_path, upstream):
    """The rollout controller's event log is mirrored into the audit log; a forced canary weight
    marks the release's gate as forced in the trace audit, and the event is listed once."""
    from sluice.audit.log import list_audit
    from sluice.rollout import store as rollout_store

    store = duckdb_store
    ref, digest = write_release(store, tmp_path, "1", upstream)
    rollout_store.append_event(store, "deployment:support", "key:ops", "forced_weight",
                               f"{ref} given 500 bp without a passing gate: outage 42",
                               {"candidate": digest, "stable": "sha256:" + "0" * 64, "weight_bp": 500})
    [entry] = list_audit(store, action_prefix="rollout.")
    assert (entry.action, entry.actor, entry.deployment) == ("rollout.forced_weight", "key:ops", "support")
    with serving(store, {"deployments": {"support": {"stable": ref}}}) as (base, _):
        tid = httpx.post(base + "/v1/chat/completions", json={"model": "support", "messages": [
            {"role": "user", "content": "hello"}]}).headers["x-sluice-trace-id"]
    report = audit_trace(store, tid)
    assert report["gate"] is None  # never gated: the notes say so, and name the override
    assert any("no gate record" in n for n in report["notes"])
    assert any("without a passing gate (forced)" in n and "outage 42" in n for n in report["notes"])
    # the override is listed once (from the controller's table, not again from its audit mirror)
    assert [(e["action"], e["source"]) for e in report["rollout"]] == [("rollout.forced_weight", "rollout")]
