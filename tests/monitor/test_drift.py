"""``sluice drift``: a shifted input stream is flagged against the gated dataset, an unshifted one
is not (real MiniLM embeddings, real store, spans written by the span writer)."""

from __future__ import annotations

import json
import random
import time

import orjson
import pytest

from gateway_fixtures import make_release
from sluice.dataset.version import import_dataset
from sluice.errors import ConfigError
from sluice.gateway import deployment_store
from sluice.gateway.config import Deployment
from sluice.monitor.drift_data import drift_report
from sluice.store import GateRecord
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.writer import SpanWriter

ITEMS = ["headphones", "kettle", "backpack", "desk lamp", "keyboard", "blender", "jacket", "monitor", "tent", "drill"]
CITIES = ["Lyon", "Porto", "Leeds", "Graz", "Turin", "Ghent"]
SUPPORT = ["where is my order {n}", "how do I return the {item} I bought last week",
           "my {item} arrived broken, can I get a refund", "can I change the delivery address for order {n}",
           "when will the {item} be back in stock", "how much is shipping to {city}"]
DISHES = ["a mushroom risotto", "lamb tagine", "a lemon tart", "vegetable lasagne", "pad thai", "beef bourguignon"]
COOKING = ("Could you please write me a detailed recipe for {dish} that serves {n} people, with every preparation "
           "step, the cooking times, what I can prepare the day before, and a wine that goes well with it?")


def support_question(rng: random.Random) -> str:
    return rng.choice(SUPPORT).format(n=rng.randint(1000, 9999), item=rng.choice(ITEMS), city=rng.choice(CITIES))


@pytest.fixture
def contract(store, tmp_path):
    return make_contract(store, tmp_path)


def make_contract(store, tmp_path):
    """A deployment whose stable release passed a gate on a 60-row support dataset (free/enterprise 50/50)."""
    rng = random.Random(1)
    rows = [{"id": f"r{i}", "input": [{"role": "user", "content": support_question(rng)}],
             "cohort": "free" if i % 2 else "enterprise"} for i in range(60)]
    path = tmp_path / "support.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    record, _ = import_dataset(store, "support", path)
    ref = make_release(store, tmp_path, "bot", "1", "http://127.0.0.1:9/v1")
    digest = store.list_releases("bot")[0].digest
    store.put_gate(GateRecord(id="gate-1", candidate_digest=digest, baseline_digest="sha256:" + "0" * 64,
                              dataset_name="support", dataset_version=record.version, policy_digest="sha256:p",
                              verdict="pass", exit_code=0))
    deployment_store.put(store, "helpdesk", Deployment(stable=ref))
    return record


def write_live(store, inputs: list[tuple[str, str]]) -> None:
    now = time.time_ns()
    spans = []
    for i, (cohort, text) in enumerate(inputs):
        body = orjson.dumps({"model": "helpdesk", "messages": [{"role": "user", "content": text}]}).decode()
        attrs = {"sluice.request": True, "sluice.deployment": "helpdesk", "sluice.route": "stable",
                 "sluice.cohort": cohort, "sluice.release": "bot@1", "input.value": body,
                 "openinference.span.kind": "LLM"}
        start = now - (len(inputs) - i) * 1_000_000
        spans.append(RawSpan(f"{i + 1:032x}", f"{i + 1:016x}", "", "gateway helpdesk", start, start + 10**6, 1, "",
                             attrs, {"service.name": "sluice-gateway"}, []))
    writer = SpanWriter(store).start()
    writer.submit(spans).wait(30)
    writer.close()


def test_unshifted_stream_is_not_flagged(store, contract):
    rng = random.Random(2)  # other orders, items and cities than the dataset's, same kinds of questions
    write_live(store, [("free" if rng.random() < 0.5 else "enterprise", support_question(rng)) for _ in range(80)])
    report = drift_report(store, "helpdesk")
    assert report["dataset"] == f"support@{contract.version}" and report["dataset_found_by"].startswith("gate gate-1")
    assert report["live_inputs"] == 80 and report["enough_data"]
    assert not report["stale"], report["checks"]
    assert report["suggestion"] is None


def test_shifted_stream_is_flagged_with_a_refresh_command(store, contract):
    rng = random.Random(3)
    live = [("trial" if rng.random() < 0.6 else "enterprise",
             COOKING.format(dish=rng.choice(DISHES), n=rng.randint(2, 12))) for _ in range(60)]
    write_live(store, live)
    report = drift_report(store, "helpdesk", since="1h")
    checks = report["checks"]
    assert report["stale"] and all(c["flagged"] for c in checks.values()), checks
    assert checks["cohort_mix"]["new_cohorts"] == ["trial"]
    assert checks["input_tokens"]["live_median"] > 2 * checks["input_tokens"]["dataset_median"]
    assert checks["novelty"]["live_novel_share"] >= 0.9 and checks["novelty"]["dataset_novel_share"] <= 0.1
    assert report["suggestion"] == ("sluice dataset from-traces support --by cohort --deployment helpdesk "
                                    "--since 1h --limit 100")


def test_no_contract_is_a_clear_error(store, tmp_path):
    ref = make_release(store, tmp_path, "bot", "1", "http://127.0.0.1:9/v1")
    deployment_store.put(store, "helpdesk", Deployment(stable=ref))
    with pytest.raises(ConfigError, match="no gate record names a dataset for deployment 'helpdesk'.*--dataset"):
        drift_report(store, "helpdesk")
    with pytest.raises(ConfigError, match="no deployment 'ghost'"):
        drift_report(store, "ghost")


def test_cli_and_http(tmp_path, capsys):
    """``sluice drift`` prints the checks and exits 1 on a stale dataset; the API answers the same
    report, 404 for an unknown deployment."""
    import httpx

    from sluice.cli.main import main
    from sluice.monitor.api import router
    from sluice.server.app import create_app
    from sluice.server.runner import running
    from sluice.store import open_store

    url = f"duckdb:///{tmp_path}/s.duckdb"
    store = open_store(url)
    make_contract(store, tmp_path)
    rng = random.Random(3)
    write_live(store, [("trial", COOKING.format(dish=rng.choice(DISHES), n=4)) for _ in range(40)])
    with running(create_app(store, routers=[router])) as api:
        body = httpx.get(api + "/api/drift/helpdesk", params={"since": "1h"}).json()
        assert body["stale"] and body["checks"]["cohort_mix"]["new_cohorts"] == ["trial"]
        assert httpx.get(api + "/api/drift/ghost").status_code == 404
        assert httpx.get(api + "/api/drift/helpdesk", params={"since": "soon"}).status_code == 400
    store.close()
    capsys.readouterr()
    assert main(["--store", url, "drift", "helpdesk", "--since", "1h"]) == 1
    out = capsys.readouterr().out
    assert "DRIFT cohort mix" in out and "new: trial" in out and "sluice dataset from-traces support" in out
