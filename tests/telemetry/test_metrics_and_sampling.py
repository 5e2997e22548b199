"""The writer commits; metrics, evaluator/feedback joins and trace sampling give known answers on
both backends."""

from __future__ import annotations

import pytest

from sluice.errors import ConfigError, DataError
from sluice.evals.result import EvalResult
from sluice.telemetry import schema  # noqa: F401 - registers the tables
from sluice.telemetry.feedback import Feedback, feedback_for, record_feedback, record_online_eval
from sluice.telemetry.metrics import MetricsQuery, compute_metrics
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.sampling import from_traces
from sluice.telemetry.writer import Backpressure, SpanWriter

T0 = 1_700_000_000 * 10**9


def tid(i: int) -> str:
    return f"{i:032x}"


def request(i: int, *, ms: float, cohort: str, release: str = "r1", status: int = 1, start_s: int = 0,
            tokens: tuple[int, int] = (10, 5), cost: float = 0.01, route: str = "stable", **extra) -> list[RawSpan]:
    """A root CHAIN span plus one LLM child carrying tokens and cost."""
    start = T0 + start_s * 10**9
    attrs = {"sluice.deployment": "chat", "sluice.release": release, "sluice.route": route, "sluice.cohort": cohort,
             "input.value": f"question {i}", "output.value": f"answer {i}", "openinference.span.kind": "CHAIN", **extra}
    child = {"sluice.deployment": "chat", "sluice.release": release, "sluice.route": route, "sluice.cohort": cohort,
             "openinference.span.kind": "LLM", "llm.model_name": "m", "llm.token_count.prompt": tokens[0],
             "llm.token_count.completion": tokens[1], "llm.cost.total": cost,
             "llm.input_messages.0.message.role": "user", "llm.input_messages.0.message.content": f"question {i}",
             "llm.output_messages.0.message.content": f"answer {i}"}
    return [
        RawSpan(tid(i), f"{i:016x}", "", "handle", start, start + int(ms * 1e6), status, "", attrs, {}, []),
        RawSpan(tid(i), f"{i + 10**6:016x}", f"{i:016x}", "llm", start, start + int(ms * 1e6 / 2), 1, "", child, {}, []),
    ]


@pytest.fixture
def loaded(store):
    spans = []
    for i, ms in enumerate([100, 200, 300, 400]):  # enterprise, r1
        spans += request(i, ms=ms, cohort="enterprise", status=2 if i == 3 else 1, start_s=i * 30)
    for i, ms in enumerate([50, 150], start=10):  # free, r1, the second one served by the fallback
        spans += request(i, ms=ms, cohort="free", route="fallback" if i == 11 else "stable", start_s=90)
    spans += request(20, ms=80, cohort="free", release="r2", tokens=(30, 10), cost=0.03, route="canary")
    retriever = RawSpan(tid(0), "f" * 16, f"{0:016x}", "retrieve", T0, T0 + 10**6, 1, "",
                        {"openinference.span.kind": "RETRIEVER", "retrieval.documents.0.document.content": "doc A",
                         "retrieval.documents.0.document.id": "A", "retrieval.documents.0.document.score": 0.9}, {}, [])
    evaluator = RawSpan(tid(1), "e" * 16, f"{1:016x}", "judge", T0, T0 + 10**6, 1, "",
                        {"openinference.span.kind": "EVALUATOR", "eval.name": "faithful", "eval.label": "fail"}, {}, [])
    writer = SpanWriter(store, batch_max_spans=5).start()
    tickets = [writer.submit(spans[k:k + 3]) for k in range(0, len(spans), 3)] + [writer.submit([retriever, evaluator])]
    for t in tickets:
        t.wait(30)
    writer.close()
    record_online_eval(store, tid(2), EvalResult(score=1.0, passed=True, evaluator="faithful"))
    record_online_eval(store, tid(3), EvalResult(score=0.0, passed=False, evaluator="faithful", error="judge down"))
    for trace, kind in ((0, "thumbs_down"), (0, "thumbs_down"), (2, "thumbs_up"), (11, "escalation"), (99, "refund")):
        record_feedback(store, Feedback(trace_id=tid(trace), kind=kind))
    return store


def by(rows: list[dict], **keys) -> dict:
    return next(r for r in rows if all(r[k] == v for k, v in keys.items()))


def test_every_span_is_committed(loaded):
    assert loaded.db.query_one("SELECT count(*) FROM spans")[0] == 16


def test_metrics_by_release_and_cohort(loaded):
    rows = compute_metrics(loaded, MetricsQuery(deployment="chat", group_by=("release", "cohort")))
    assert [(r["release"], r["cohort"]) for r in rows] == [("r1", "enterprise"), ("r1", "free"), ("r2", "free")]
    ent = by(rows, cohort="enterprise")
    assert (ent["requests"], ent["error_rate"], ent["fallback_rate"]) == (4, 0.25, 0.0)
    # exact linear-interpolation quantiles of 100, 200, 300, 400
    assert (ent["latency_p50_ms"], ent["latency_p95_ms"], ent["latency_p99_ms"]) == pytest.approx((250.0, 385.0, 397.0))
    assert (ent["tokens_per_request"], ent["input_tokens_per_request"], ent["cost_per_request"]) == pytest.approx((15.0, 10.0, 0.01))
    # evaluator span on trace 1 failed; the online result on trace 2 passed; trace 3's errored judge is not counted
    assert (ent["evaluations"], ent["eval_fail_rate"]) == (2, 0.5)
    assert (ent["thumbs_down_rate"], ent["thumbs_up_rate"]) == (0.25, 0.25)
    free = by(rows, release="r1", cohort="free")
    assert (free["requests"], free["fallback_rate"], free["escalation_rate"], free["eval_fail_rate"]) == (2, 0.5, 0.5, None)
    canary = by(rows, release="r2")
    assert (canary["tokens_per_request"], canary["cost_per_request"]) == pytest.approx((40.0, 0.03))


def test_metrics_windows_and_filters(loaded):
    rows = compute_metrics(loaded, MetricsQuery(cohort="enterprise", window_s=60, group_by=("cohort",)))
    # T0 is 22:13:20; requests at +0, +30, +60, +90 s
    assert [(r["window_start"], r["requests"]) for r in rows] == [
        ("2023-11-14T22:13:00Z", 2), ("2023-11-14T22:14:00Z", 2)]
    only = compute_metrics(loaded, MetricsQuery(route="canary", group_by=()))
    assert len(only) == 1 and only[0]["requests"] == 1
    late = compute_metrics(loaded, MetricsQuery(since_ns=T0 + 60 * 10**9, group_by=()))
    assert late[0]["requests"] == 4  # enterprise at +60 and +90, both free requests at +90
    with pytest.raises(ConfigError, match="cannot group by tenant"):
        MetricsQuery(group_by=("tenant",))


def test_sample_by_cohort_builds_rows(loaded):
    rec, created, skipped = from_traces(loaded, "prod-sample", by="cohort", limit=2)
    assert created and skipped == 0 and rec.row_count == 4 and rec.cohorts == {"enterprise": 2, "free": 2}
    again, created_again, _ = from_traces(loaded, "prod-sample", by="cohort", limit=2)
    assert again.version == rec.version and not created_again  # same seed, same data: same version
    rows = {r["id"]: r for r in loaded.get_dataset_rows(rec.version)}
    if tid(0) in rows:
        r0 = rows[tid(0)]
        assert r0["input"] == [{"role": "user", "content": "question 0"}]
        assert r0["context"] == [{"text": "doc A", "id": "A", "score": 0.9, "metadata": {}}]
        assert r0["metadata"]["production_output"] == "answer 0" and r0["trace_id"] == tid(0)


def test_sample_failures_and_negative_feedback(loaded):
    rec, _, _ = from_traces(loaded, "failures", by="failure")
    ids = {r["id"] for r in loaded.get_dataset_rows(rec.version)}
    assert ids == {tid(1), tid(3)}  # failed evaluator span, error status (trace 3's errored judge does not count)
    rec, _, _ = from_traces(loaded, "unhappy", by="feedback")
    rows = loaded.get_dataset_rows(rec.version)
    assert {r["id"] for r in rows} == {tid(0), tid(11)}
    assert by(rows, id=tid(0))["metadata"]["feedback"] == ["thumbs_down"]
    with pytest.raises(DataError, match="no stored traces match"):
        from_traces(loaded, "none", by="feedback", cohort="nobody")


def test_writer_backpressure(store):
    writer = SpanWriter(store, queue_max_spans=3)  # not started: nothing drains
    writer.submit(request(1, ms=1, cohort="c"))
    with pytest.raises(Backpressure):
        writer.submit(request(2, ms=1, cohort="c"))


def test_writer_caps_duckdb_memory_but_keeps_a_lower_limit(duckdb_store):
    """DuckDB caches written blocks up to memory_limit (80 % of RAM): uncapped, a long ingest grows
    the server without bound (bench/results/ingest.md)."""
    conn = duckdb_store.db.conn

    def limit() -> str:
        return conn.execute("SELECT current_setting('memory_limit')").fetchone()[0]

    writer = SpanWriter(duckdb_store).start()
    writer.close()
    assert limit() == "1.0 GiB"
    conn.execute("SET memory_limit = '100MB'")
    writer = SpanWriter(duckdb_store).start()
    writer.close()
    assert limit() == "95.3 MiB"


def test_feedback_with_an_upper_case_trace_id_joins_its_trace(loaded):
    """Clients print trace ids in either case; spans are stored lower-case, so feedback must be too."""
    record_feedback(loaded, Feedback(trace_id=tid(10).upper(), kind="thumbs_down"))
    assert [f["kind"] for f in feedback_for(loaded, tid(10))] == ["thumbs_down"]
    rec, _, _ = from_traces(loaded, "unhappy", by="feedback")
    assert by(loaded.get_dataset_rows(rec.version), id=tid(10))["metadata"]["feedback"] == ["thumbs_down"]


@pytest.mark.parametrize("preset", [None, "100MB"])
def test_duckdb_sink_leaves_no_open_result_on_its_cursor(duckdb_store, preset):
    """Reading memory_limit with fetchone left the settings query open on the sink's cursor when no
    SET followed (limit already <= 1 GiB, e.g. every sink after the first): a second sink on the
    same store then met "connection has an unfinished result"."""
    import duckdb

    from sluice.telemetry.writer import _sink_for

    if preset:
        duckdb_store.db.conn.execute(f"SET memory_limit = '{preset}'")
    for _ in range(2):  # the second sink finds the limit the first one set
        sink = _sink_for(duckdb_store)
        try:
            with pytest.raises(duckdb.InvalidInputException, match="No open result set"):
                sink.conn.fetchone()
        finally:
            sink.close()
