"""Child spans inherit deployment, release and cohort from the trace's attributed ancestors, on
both backends and whichever arrives first (the OTel SDK exports children before their root)."""

from __future__ import annotations

from sluice.telemetry import schema  # noqa: F401 - registers the tables
from sluice.telemetry.attribution import Known, plan
from sluice.telemetry.otlp import RawSpan
from sluice.telemetry.writer import SpanWriter

T0 = 1_700_000_000 * 10**9
TRACE = "1" * 32


def span(sid: str, parent: str = "", attrs: dict | None = None, *, trace: str = TRACE, start: int = T0) -> RawSpan:
    return RawSpan(trace, sid * 16, parent * 16 if parent else "", f"span {sid}", start, start + 10**6, 1, "",
                   attrs or {}, {}, [])


ROOT = {"gen_ai.operation.name": "invoke_agent", "sluice.cohort": "enterprise", "sluice.release": "agent@1.0.0",
        "sluice.deployment": "support"}
LLM = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m", "gen_ai.usage.input_tokens": 100,
       "gen_ai.usage.output_tokens": 20, "sluice.cost": 0.5}


def stored(store) -> dict[str, tuple]:
    rows = store.db.query("SELECT span_id, deployment, release, cohort, unattributed FROM spans")
    return {r[0][0]: tuple(r[1:]) for r in rows}


def write(store, *batches: list[RawSpan]) -> None:
    writer = SpanWriter(store).start()
    try:
        for b in batches:  # one commit each, in this order
            writer.submit(b).wait(30)
    finally:
        writer.close()


def test_plan_nearest_attributed_ancestor_wins():
    # a (root: cohort x) -> b (cohort y) -> c (nothing) ; d (orphan, parent not here)
    p = plan([TRACE] * 4, ["a", "b", "c", "d"], ["", "a", "b", "z"], [1, 2, 3, 4],
             ["dep", "", "", ""], ["rel", "", "", ""], ["x", "y", "", ""], {})
    assert list(zip(p.deployment, p.release, p.cohort, p.unattributed)) == [
        ("dep", "rel", "x", 0), ("dep", "rel", "y", 0), ("dep", "rel", "y", 0), ("dep", "rel", "x", 0)]
    assert p.upserts[TRACE].values() == ["dep", "rel", "x"] and p.upserts[TRACE].from_root
    assert not p.fixups


def test_plan_children_first_then_root_fixes_them_up():
    p = plan([TRACE], ["c"], ["a"], [5], [""], [""], [""], {})
    assert (p.cohort, p.unattributed) == (["default"], [7])
    pending = p.upserts[TRACE]
    assert pending.pending_since == 5 and pending.values() == ["", "", ""]
    p = plan([TRACE], ["a"], [""], [1], ["dep"], [""], ["x"], {TRACE: pending})
    assert [(f.trace_id, f.deployment, f.cohort, f.keep, f.since) for f in p.fixups] == [(TRACE, "dep", "x", 2, 5)]
    assert p.upserts[TRACE].pending_since == 5  # the release is still missing (the root waits for nothing)
    assert (p.release, p.unattributed) == ([""], [0])


def test_plan_a_root_waits_for_nothing_a_child_does():
    p = plan(["t"], ["a"], [""], [1], [""], [""], [""], {})
    assert (p.deployment, p.cohort, p.unattributed, p.upserts) == ([""], ["default"], [0], {})
    p = plan(["t"], ["b"], ["a"], [2], [""], [""], [""], {})
    assert (p.cohort, p.unattributed) == (["default"], [7])
    assert p.upserts["t"] == Known(pending_since=2)


def test_children_in_the_same_write_inherit(store):
    write(store, [span("a", "", ROOT), span("b", "a", LLM), span("c", "b", {"sluice.cohort": "beta"})])
    assert stored(store) == {"a": ("support", "agent@1.0.0", "enterprise", 0),
                             "b": ("support", "agent@1.0.0", "enterprise", 0),
                             "c": ("support", "agent@1.0.0", "beta", 0)}


def test_children_arriving_first_are_fixed_up(store):
    write(store, [span("b", "a", LLM)], [span("c", "b", LLM)], [span("a", "", ROOT)])
    assert stored(store) == {k: ("support", "agent@1.0.0", "enterprise", 0) for k in "abc"}
    # the cohort carries the tokens and cost; no phantom default group
    rows = store.db.query("SELECT cohort, SUM(input_tokens), SUM(cost) FROM spans GROUP BY cohort")
    assert [tuple(r) for r in rows] == [("enterprise", 200, 1.0)]


def test_pending_children_are_fixed_up_after_a_restart(store):
    write(store, [span("b", "a", LLM)])  # one writer (process) stores the child and stops
    assert store.db.query("SELECT trace_id, pending_since FROM trace_attribution") == [(TRACE, T0)]
    write(store, [span("a", "", ROOT)])  # the next one gets the root
    assert stored(store) == {k: ("support", "agent@1.0.0", "enterprise", 0) for k in "ab"}
    assert store.db.query("SELECT count(*) FROM trace_attribution") == [(0,)]  # nothing waits any more


def test_children_arriving_after_the_root_inherit(store):
    other = "2" * 32
    write(store, [span("a", "", ROOT), span("x", "", {"sluice.cohort": "free"}, trace=other)],
          [span("b", "a", LLM), span("y", "x", LLM, trace=other)])
    got = stored(store)
    assert got["b"] == ("support", "agent@1.0.0", "enterprise", 0)
    assert got["y"] == ("", "", "free", 3)  # only the cohort was attributed


def test_a_trace_nobody_attributes_stays_default(store):
    write(store, [span("b", "a", LLM)])
    assert stored(store) == {"b": ("", "", "default", 7)}
    write(store, [span("c", "a", LLM)])  # a sibling, still no attribution
    assert stored(store)["c"] == ("", "", "default", 7)
