"""The span writer's fire-and-forget path: gateway spans linger so one transaction carries many,
while a submission someone waits on (ingest) still commits at once and takes them along."""

from __future__ import annotations

import os

from gateway_fixtures import serving
from sluice.gateway.spans import RequestRecord, SpanSink
from sluice.telemetry import schema  # noqa: F401 - registers the span tables
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.writer import SpanWriter

T0 = 1_700_000_000 * 10**9


def raw(i: int) -> RawSpan:
    return RawSpan(f"{i:032x}", f"{i:016x}", "", "gateway bench", T0 + i, T0 + i + 10**6, 1, "",
                   {"sluice.deployment": "bench", "sluice.request": True}, {}, [])


def record(i: int) -> RequestRecord:
    return RequestRecord(trace_id=f"{i:032x}", span_id=f"{i:016x}", parent_id="", start_ns=T0 + i, started=0.0,
                         deployment="bench", route="stable", release="sha256:" + "a" * 64)


def count(store) -> int:
    return store.db.query_one("SELECT count(*) FROM spans")[0]


def test_lingering_spans_ride_with_the_next_waited_submission(duckdb_store):
    writer = SpanWriter(duckdb_store, linger_s=3600).start()
    for i in range(5):
        writer.submit([raw(i)], linger=True)
    writer.submit([raw(100)]).wait(30)  # an ingest request: committed now, with everything queued before it
    assert (writer.committed_spans, writer.batches) == (6, 1)
    assert count(duckdb_store) == 6
    writer.close()


def test_enough_lingering_spans_commit_without_waiting_for_the_deadline(duckdb_store):
    writer = SpanWriter(duckdb_store, linger_s=3600, linger_max_spans=10).start()
    tickets = [writer.submit([raw(i)], linger=True) for i in range(10)]
    tickets[-1].wait(30)
    assert (writer.committed_spans, writer.batches) == (10, 1)
    writer.close()


def test_lingering_spans_commit_after_the_deadline(duckdb_store):
    writer = SpanWriter(duckdb_store, linger_s=0.05).start()
    tickets = [writer.submit([raw(i)], linger=True) for i in range(3)]
    for t in tickets:
        t.wait(30)
    assert writer.committed_spans == 3 and count(duckdb_store) == 3
    writer.close()


def test_close_flushes_lingering_spans(duckdb_store):
    writer = SpanWriter(duckdb_store, linger_s=3600).start()
    sink = SpanSink(writer)
    for i in range(7):
        sink.submit(record(i))
    writer.close()
    assert (sink.submitted, sink.dropped) == (7, 0)
    assert count(duckdb_store) == 7


def test_a_full_queue_drops_gateway_spans_and_counts_them(duckdb_store):
    writer = SpanWriter(duckdb_store, queue_max_spans=2)  # not started: nothing drains
    sink = SpanSink(writer)
    for i in range(5):
        sink.submit(record(i))
    assert (sink.submitted, sink.dropped) == (2, 3)
    writer.close()
    sink.submit(record(9))  # a closed writer drops too
    assert sink.dropped == 4


def test_the_gateway_lowers_the_writer_threads_priority(duckdb_store):
    with serving(duckdb_store, {"span_writer_nice": 7}) as (_, gw):
        writer = gw.spans.writer
        base = os.getpriority(os.PRIO_PROCESS, 0)
        # absolute niceness; an unprivileged process already nicer than 7 may not lower it (EACCES,
        # logged), root may (the suite itself may run under `nice`)
        expected = 7 if os.geteuid() == 0 else max(base, 7)
        assert os.getpriority(os.PRIO_PROCESS, writer._native_id) == expected


def test_on_the_event_loop_spans_reach_the_writer_in_slices(duckdb_store):
    import asyncio

    writer = SpanWriter(duckdb_store)  # not started: what it is handed stays queued
    sink = SpanSink(writer, slice_spans=4, slice_s=3600)

    async def requests():
        for i in range(3):
            sink.submit(record(i))
        assert (writer.queued_spans, sink.submitted) == (0, 0)  # waiting for their slice
        sink.submit(record(3))  # the fourth fills it
        assert (writer.queued_spans, sink.submitted) == (4, 4)
        sink.submit(record(4))
        sink.flush()  # the gateway's shutdown
        assert (writer.queued_spans, sink.submitted) == (5, 5)
        sink.slice_s = 0.01
        sink.submit(record(5))
        await asyncio.sleep(0.1)  # the slice's deadline passes
        assert writer.queued_spans == 6

    asyncio.run(requests())
    writer.start()
    writer.close()
    assert count(duckdb_store) == 6
