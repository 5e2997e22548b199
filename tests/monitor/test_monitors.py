"""Monitors and alerts: measurements, the judgement, an alert firing once to a real local
receiver with a valid signature, de-duplicated, re-notified, resolved; retries; the schedule in
the server; one evaluating replica on PostgreSQL."""

from __future__ import annotations

import time

import httpx
import pytest

from monitor_helpers import receiver, write_requests
from sluice.errors import ConfigError
from sluice.evals.result import EvalResult
from sluice.monitor.alerts import list_alerts
from sluice.monitor.config import Monitor, MonitoringSettings
from sluice.monitor.judge import judge, next_action
from sluice.monitor.measure import ALL, Measurement, measure
from sluice.monitor.service import MonitorService
from sluice.monitor.webhook import verify
from sluice.telemetry.feedback import Feedback, record_feedback, record_online_eval

NOW = 1_800_000_000.0
SECRET_ENV = "SLUICE_TEST_ALERT_SECRET"


def settings(url: str, **monitor) -> MonitoringSettings:
    spec = {"name": "errors", "deployment": "support", "cohort": "*", "metric": "error_rate", "window": "10m",
            "threshold": 0.2, "min_requests": 10, "notify": ["ops", "chat"]} | monitor
    return MonitoringSettings.model_validate({
        "interval_s": 0.05, "renotify_s": 300,
        "webhooks": {"ops": {"url": url + "/ops", "secret_env": SECRET_ENV, "backoff_s": 0.001},
                     "chat": {"url": url + "/chat", "format": "slack", "backoff_s": 0.001}},
        "monitors": [spec]})


def test_measurements_are_exact(store):
    ids = write_requests(store, NOW - 60, 10, cohort="a", errors=2, ms=100.0, blocked=3, guardrail="no-pii")
    write_requests(store, NOW - 60, 10, cohort="b", ms=300.0)
    write_requests(store, NOW - 60, 5, cohort="a", errors=5, route="shadow")  # users never saw these
    write_requests(store, NOW - 3600, 10, cohort="a", errors=10)  # outside the window
    for tid in ids[:4]:
        record_online_eval(store, tid, EvalResult(evaluator="faithful", score=0.0, passed=False))
    record_online_eval(store, ids[4], EvalResult(evaluator="faithful", score=1.0, passed=True))
    record_feedback(store, Feedback(trace_id=ids[0], kind="thumbs_down"))
    since, until = int((NOW - 600) * 1e9), int(NOW * 1e9)

    def m(metric, **kw):
        return measure(store, metric, "support", since, until, **kw)

    assert m("error_rate", per_cohort=True) == {"a": Measurement(0.2, 10), "b": Measurement(0.0, 10)}
    assert m("error_rate") == {ALL: Measurement(0.1, 20)}
    assert m("guardrail_block_rate", cohort="a") == {ALL: Measurement(0.3, 10)}
    assert m("latency_p95_ms", per_cohort=True)["b"].value == pytest.approx(300.0)
    assert m("cost_per_request")[ALL].value == pytest.approx(0.002)
    assert m("eval_fail_rate", per_cohort=True)["a"] == Measurement(0.8, 5)
    assert m("thumbs_down_rate", per_cohort=True) == {"a": Measurement(0.1, 10), "b": Measurement(0.0, 10)}


def test_judgement_and_transitions():
    mon = Monitor(name="m", deployment="d", metric="error_rate", threshold=0.1, min_requests=10)
    assert judge(mon, Measurement(0.5, 9)).state == "no_data"
    firing = judge(mon, Measurement(0.5, 10))
    assert firing.state == "firing" and firing.limit == 0.1 and "above threshold 0.1" in firing.reason
    assert judge(mon, Measurement(0.1, 10)).state == "ok"
    up = Monitor(name="u", deployment="d", metric="thumbs_up_rate", threshold=0.5, min_requests=1)
    assert judge(up, Measurement(0.4, 5)).state == "firing" and judge(up, Measurement(0.6, 5)).state == "ok"
    base = Monitor(name="b", deployment="d", metric="latency_p95_ms", baseline={"window": "1h", "factor": 2},
                   min_requests=5)
    assert judge(base, Measurement(500, 10), Measurement(200, 4)).state == "no_data"
    assert judge(base, Measurement(500, 10), Measurement(200, 50)).state == "firing"
    assert judge(base, Measurement(390, 10), Measurement(200, 50)).state == "ok"
    assert next_action(False, None, firing, 0, 60) == "fire"
    assert next_action(True, 0.0, firing, 59, 60) == "none"
    assert next_action(True, 0.0, firing, 60, 60) == "renotify"
    assert next_action(True, 0.0, firing, 1e9, 0) == "none"  # renotify 0: never again
    assert next_action(True, None, firing, 1, 60) == "renotify"  # the first message never got through
    assert next_action(True, 0.0, judge(mon, Measurement(0.0, 10)), 1, 60) == "resolve"
    assert next_action(True, 0.0, judge(mon, Measurement(0.9, 2)), 1, 60) == "none"  # no data is not success


def test_config_errors_are_clear():
    with pytest.raises(ValueError, match="unknown metric 'errors'"):
        Monitor(name="m", deployment="d", metric="errors", threshold=1)
    with pytest.raises(ValueError, match="threshold or baseline"):
        Monitor(name="m", deployment="d", metric="error_rate")
    with pytest.raises(ValueError, match="unknown webhook"):
        MonitoringSettings.model_validate({"monitors": [{"name": "m", "deployment": "d", "metric": "error_rate",
                                                         "threshold": 0.1, "notify": ["pager"]}]})


def test_fires_once_dedups_renotifies_and_resolves(store, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "s3cret")
    with receiver() as rx:
        svc = MonitorService(store, settings(rx.url))
        write_requests(store, NOW - 60, 20, cohort="enterprise", errors=10)
        write_requests(store, NOW - 60, 20, cohort="free")
        fired = svc.tick(NOW)
        assert [(e["event"], e["cohort"], e["delivered_to"]) for e in fired] == [("firing", "enterprise",
                                                                                  ["ops", "chat"])]
        assert len(rx.requests) == 2
        ops = next(r for r in rx.requests if r["path"] == "/ops")
        h = ops["headers"]
        assert verify("s3cret", h["x-sluice-timestamp"], ops["body"], h["x-sluice-signature"])
        assert not verify("wrong", h["x-sluice-timestamp"], ops["body"], h["x-sluice-signature"])
        assert ops["json"]["event"] == "firing" and ops["json"]["value"] == 0.5 and ops["json"]["limit"] == 0.2
        chat = next(r for r in rx.requests if r["path"] == "/chat")
        assert "x-sluice-signature" not in chat["headers"]  # no secret configured for this hook
        assert chat["json"]["text"].startswith(":rotating_light: [FIRING] errors: support cohort enterprise")

        assert svc.tick(NOW + 30) == [] and len(rx.requests) == 2  # open: not sent again
        again = svc.tick(NOW + 310)  # the re-notify interval passed; the errors are still in the window
        assert [e["event"] for e in again] == ["renotify"] and len(rx.requests) == 4

        write_requests(store, NOW + 400, 30, cohort="enterprise")  # recovered traffic
        resolved = svc.tick(NOW + 700)  # the failing spans left the 10-minute window
        assert [(e["event"], e["cohort"]) for e in resolved] == [("resolved", "enterprise")]
        assert [r["json"].get("event") for r in rx.requests[-2:] if r["path"] == "/ops"] == ["resolved"]
        assert "[RESOLVED]" in rx.requests[-1]["json"]["text"] or "[RESOLVED]" in rx.requests[-2]["json"]["text"]
        assert svc.tick(NOW + 710) == []
    listed = list_alerts(store, now=NOW + 710)
    assert [(a.cohort, a.status, a.notifications) for a in listed] == [("enterprise", "resolved", 3)]
    assert listed[0].opened_at == NOW and listed[0].resolved_at == NOW + 700


def test_retries_with_backoff_and_undelivered_alerts_are_retried(duckdb_store, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, "k")
    slept: list[float] = []
    with receiver(fail_first=2) as rx:
        cfg = settings(rx.url, notify=["ops"], cohort=None)
        cfg.webhooks["ops"].backoff_s = 0.5
        svc = MonitorService(duckdb_store, cfg, sleep=slept.append)
        write_requests(duckdb_store, NOW - 60, 20, errors=20)
        [event] = svc.tick(NOW)
        assert event["delivered_to"] == ["ops"] and [r["status"] for r in rx.requests] == [500, 500, 200]
        assert slept == [0.5, 1.0]
        assert rx.requests[0]["json"]["alert_id"] == rx.requests[2]["json"]["alert_id"]
    with receiver(fail_first=100, status=400) as bad:  # a 4xx is not retried
        cfg = settings(bad.url, name="errors-2", notify=["ops"], cohort=None)
        svc = MonitorService(duckdb_store, cfg, sleep=slept.append)
        [event] = svc.tick(NOW)
        assert event["errors"] == ["ops: HTTP 400"] and len(bad.requests) == 1
        [alert] = [a for a in list_alerts(duckdb_store, now=NOW) if a.monitor == "errors-2"]
        assert alert.notified_at is None and alert.last_error == "ops: HTTP 400"
        bad.fail_first = 0
        assert [e["event"] for e in svc.tick(NOW + 1)] == ["renotify"]  # due: never delivered


def test_missing_secret_is_reported_not_sent_unsigned(duckdb_store, monkeypatch):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    with receiver() as rx:
        svc = MonitorService(duckdb_store, settings(rx.url, notify=["ops"], cohort=None))
        write_requests(duckdb_store, NOW - 60, 20, errors=20)
        [event] = svc.tick(NOW)
        assert rx.requests == [] and f"{SECRET_ENV} (the webhook secret) is not set" in event["errors"][0]


def test_baseline_is_the_same_releases_earlier_window(duckdb_store):
    store = duckdb_store
    write_requests(store, NOW - 1800, 30, ms=100.0, release="sha256:r1")  # baseline: an hour before the window
    write_requests(store, NOW - 1800, 30, ms=900.0, release="sha256:r0")  # another release: not its baseline
    cfg = MonitoringSettings.model_validate({"monitors": [{
        "name": "slow", "deployment": "support", "metric": "latency_p95_ms", "window": "10m",
        "baseline": {"window": "1h", "factor": 1.5}, "min_requests": 10}]})
    svc = MonitorService(store, cfg)
    write_requests(store, NOW - 60, 20, ms=140.0, release="sha256:r1")
    assert svc.tick(NOW) == []
    write_requests(store, NOW - 30, 20, ms=400.0, release="sha256:r1")
    [event] = svc.tick(NOW)
    assert event["event"] == "firing" and event["limit"] == pytest.approx(150.0)
    assert "above baseline 100 × 1.5" in event["reason"] and event["delivered_to"] == []


def test_schedule_in_the_server_and_read_apis(tmp_path, monkeypatch, capsys):
    """``sluice serve``'s wiring: the loop evaluates on its own; /api/alerts and the CLI list it."""
    from sluice.cli.main import main
    from sluice.monitor.api import router as monitor_api
    from sluice.server.app import create_app
    from sluice.server.runner import running
    from sluice.store import open_store

    monkeypatch.setenv(SECRET_ENV, "k")
    url = f"duckdb:///{tmp_path}/s.duckdb"
    store = open_store(url)
    write_requests(store, time.time() - 30, 20, cohort="enterprise", errors=20)
    with receiver() as rx:
        svc = MonitorService(store, settings(rx.url))
        with running(create_app(store, routers=[monitor_api, svc.router])) as api:
            deadline = time.monotonic() + 30
            while not rx.requests and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(rx.bodies()) >= 1, "the monitor loop sent nothing within 30 s"
            body = httpx.get(api + "/api/alerts").json()
            assert [(a["monitor"], a["cohort"], a["status"]) for a in body["alerts"]] == [
                ("errors", "enterprise", "open")]
            assert httpx.get(api + "/api/alerts", params={"recent": "soon"}).status_code == 400
        assert svc.ticks >= 1 and len([r for r in rx.requests if r["path"] == "/ops"]) == 1  # dedup across ticks
    store.close()
    capsys.readouterr()
    assert main(["--store", url, "alerts", "list"]) == 0
    out = capsys.readouterr().out
    assert "errors" in out and "enterprise" in out and "open" in out


@pytest.mark.postgres
def test_one_replica_evaluates(pg_database_url, monkeypatch):
    from sluice.store import open_store

    monkeypatch.setenv(SECRET_ENV, "k")
    first, second = open_store(pg_database_url), open_store(pg_database_url)
    try:
        for table in ("spans", "alerts"):
            first.db.execute(f"TRUNCATE {table}")
        write_requests(first, NOW - 60, 20, errors=20)
        with receiver() as rx:
            a = MonitorService(first, settings(rx.url, cohort=None))
            b = MonitorService(second, settings(rx.url, cohort=None))
            assert [e["event"] for e in a.tick(NOW)] == ["firing"]
            assert b.tick(NOW + 400) == [] and not b.is_leader()
            first.close()  # the leader goes away: its lock goes with its connection (once the server notices)
            deadline = time.monotonic() + 30
            while not b.is_leader() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert b.is_leader() and [e["event"] for e in b.tick(NOW + 400)] == ["renotify"]
            assert len([r for r in rx.requests if r["path"] == "/ops"]) == 2
    finally:
        second.close()
        try:
            first.close()
        except Exception:  # noqa: BLE001 - already closed above
            pass


def test_bad_monitoring_config_is_one_line(tmp_path):
    from sluice.config import load_settings

    (tmp_path / "sluice.yaml").write_text("monitoring:\n  monitors:\n    - name: m\n      deployment: d\n"
                                          "      metric: error_rate\n      window: soon\n      threshold: 0.1\n")
    with pytest.raises(ConfigError, match="sluice.yaml:6.*window"):
        load_settings(tmp_path / "sluice.yaml")


def test_stored_monitors_are_evaluated_and_audited(duckdb_store, monkeypatch):
    """How a promoted rollout adds its watch: ``save_monitor``; sluice.yaml wins on a name clash."""
    from sluice.audit.log import list_audit
    from sluice.monitor.stored import save_monitor, stored_monitors

    monkeypatch.setenv(SECRET_ENV, "k")
    store = duckdb_store
    spec = {"name": "after-promote", "deployment": "support", "metric": "error_rate", "threshold": 0.1,
            "min_requests": 10, "notify": ["ops", "pager"]}
    save_monitor(store, spec, source="rollout:ro-1", actor="rollout-controller")
    save_monitor(store, spec, source="rollout:ro-1", actor="rollout-controller")  # unchanged: not logged again
    with pytest.raises(ValueError, match="unknown metric"):
        save_monitor(store, spec | {"metric": "vibes"})
    [entry] = list_audit(store, action_prefix="monitor.")
    assert (entry.action, entry.actor, entry.after["source"]) == ("monitor.created", "rollout-controller",
                                                                   "rollout:ro-1")
    write_requests(store, NOW - 60, 20, errors=20)
    with receiver() as rx:
        cfg = settings(rx.url, name="from-config", cohort=None, notify=["ops"])
        events = {e["monitor"]: e for e in MonitorService(store, cfg).tick(NOW)}
        assert sorted(events) == ["after-promote", "from-config"]  # both see every request failing
        event = events["after-promote"]
        assert event["event"] == "firing" and event["delivered_to"] == ["ops"]
        assert event["errors"] == ["pager: no such webhook in sluice.yaml"]
    assert [m.name for m in stored_monitors(store)] == ["after-promote"]
    shadowed = settings("http://127.0.0.1:9", name="after-promote", cohort=None, notify=[], threshold=2.0)
    assert [m.threshold for m in MonitorService(store, shadowed).monitors()] == [2.0]


def test_a_named_cohort_is_watched_alone(duckdb_store):
    write_requests(duckdb_store, NOW - 60, 20, cohort="enterprise", errors=10)
    write_requests(duckdb_store, NOW - 60, 200, cohort="free")  # would dilute the rate to 5 %
    cfg = MonitoringSettings.model_validate({"monitors": [{
        "name": "ent", "deployment": "support", "cohort": "enterprise", "metric": "error_rate",
        "threshold": 0.2, "min_requests": 10}]})
    svc = MonitorService(duckdb_store, cfg)
    [event] = svc.tick(NOW)
    assert (event["cohort"], event["value"], event["requests"]) == ("enterprise", 0.5, 20)
    assert svc.tick(NOW + 1) == []
    assert [(a.cohort, a.status) for a in list_alerts(duckdb_store, now=NOW)] == [("enterprise", "open")]


def test_a_promotion_leaves_monitors_behind(duckdb_store, monkeypatch):
    """The rollout plan's analysis rules become per-cohort baseline monitors of the promoted
    release when its rollout finishes ``promoted``; they notify every webhook."""
    from sluice.monitor.stored import monitors_from_plan, stored_monitors
    from sluice.rollout import actions
    from sluice.rollout import store as rollout_store

    plan = {"analysis": {"metrics": [{"metric": "error_rate", "margin": 0.25, "min_samples": 40},
                                     {"metric": "latency_p99", "margin": 0.5},
                                     {"metric": "eval_fail_rate:groundedness", "margin": 0.05, "relative": False},
                                     {"metric": "ttft_p95", "margin": 0.5}]}, "steps": []}
    made = {m.metric: m for m in monitors_from_plan("support", plan)}
    assert sorted(made) == ["error_rate", "eval_fail_rate", "latency_p99_ms"]  # no monitor metric for ttft
    assert (made["error_rate"].baseline.factor, made["error_rate"].min_requests) == (1.25, 40)
    assert (made["eval_fail_rate"].baseline.factor, made["eval_fail_rate"].baseline.min_delta) == (1.0, 0.05)
    assert made["error_rate"].cohort == "*" and made["error_rate"].notify == ["*"]

    ro = rollout_store.Rollout(id="ro-1", deployment="support", status="running", candidate_ref="bot@2",
                               candidate_digest="sha256:c", stable_ref="bot@1", stable_digest="sha256:s", plan=plan,
                               created_at=NOW, updated_at=NOW)
    rollout_store.insert(duckdb_store, ro)
    actions.finish(duckdb_store, ro, "promoted", "controller", "promote", "bot@2 promoted")
    assert sorted(m.name for m in stored_monitors(duckdb_store)) == [
        "support:error_rate", "support:eval_fail_rate", "support:latency_p99_ms"]

    monkeypatch.setenv(SECRET_ENV, "k")
    write_requests(duckdb_store, NOW - 7200, 50, release="sha256:c")  # the release's own earlier traffic: no errors
    write_requests(duckdb_store, NOW - 60, 50, release="sha256:c", errors=25)
    with receiver() as rx:
        cfg = settings(rx.url, name="unrelated", deployment="other")
        events = MonitorService(duckdb_store, cfg).tick(NOW)
        fired = [e for e in events if e["monitor"] == "support:error_rate"]
        assert [(e["event"], e["cohort"], e["delivered_to"]) for e in fired] == [("firing", "default", ["ops", "chat"])]
