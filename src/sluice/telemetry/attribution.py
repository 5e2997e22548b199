"""Spans of one trace inherit deployment, release and cohort from their attributed ancestors.

Apps set ``sluice.cohort`` (or release, deployment, or traceAI's project) on the root
``invoke_agent`` span; the child LLM and embedding spans carry the tokens and the cost but no
attribution. Stored as they come, the cohort would show no tokens and a phantom ``default``
group would hold them. So at write time each span takes every field it lacks from its nearest
ancestor in the same write that has it, else from the trace's recorded attribution.

The trace's attribution (``trace_attribution``, one row per trace) is the root span's, else
that of the top-most spans seen so far. OTel exporters send children first (they end first),
so a child that finds nothing is written with ``unattributed`` bits (1 deployment, 2 release,
4 cohort) and the trace is marked pending; when attribution arrives later, ``fixups`` says
which stored spans to update. A field nobody attributes ends as ``""`` (cohort ``default``);
a root never waits (it has no ancestor).

``plan`` is pure: the writer's sinks read the recorded rows, call it, and write what it says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

FIELDS = ("deployment", "release", "cohort")
ALL_BITS = 7
DEFAULT_COHORT = "default"


@dataclass(slots=True)
class Known:
    """One ``trace_attribution`` row ("" = not known yet)."""

    deployment: str = ""
    release: str = ""
    cohort: str = ""
    from_root: bool = False
    pending_since: int | None = None  # start_ns of the oldest stored span still lacking a field

    def values(self) -> list[str]:
        return [self.deployment, self.release, self.cohort]

    def missing(self) -> int:
        return sum(1 << b for b, v in enumerate(self.values()) if not v)


@dataclass(slots=True)
class Fixup:
    """Stored spans of ``trace_id`` (start_ns >= ``since``) take these values for the fields they lack."""

    trace_id: str
    deployment: str
    release: str
    cohort: str
    keep: int  # unattributed bits that stay set (fields still unknown)
    since: int


@dataclass(slots=True)
class Plan:
    deployment: list[str]
    release: list[str]
    cohort: list[str]  # "default" where nothing attributed it
    unattributed: list[int]
    upserts: dict[str, Known] = field(default_factory=dict)  # traces whose attribution changed
    fixups: list[Fixup] = field(default_factory=list)
    remember: dict[str, tuple[str, str, str, bool]] = field(default_factory=dict)  # (d, r, c, from root)


def plan(trace_ids, span_ids, parent_ids, start_ns, deployments, releases, cohorts,
         known: dict[str, Known]) -> Plan:
    """Inherited values and bits for one write; ``known`` holds the recorded rows of its traces."""
    if not known and not any(parent_ids):
        return _roots_only(trace_ids, deployments, releases, cohorts)
    n = len(trace_ids)
    orig = (deployments, releases, cohorts)
    index = {(t, s): i for i, (t, s) in enumerate(zip(trace_ids, span_ids))}
    merged: dict[str, Known] = {}
    for i in range(n):  # the trace's attribution: root first, then the tops of fragments
        t, p = trace_ids[i], parent_ids[i]
        if p and (t, p) in index:
            continue
        values = [orig[0][i] or "", orig[1][i] or "", orig[2][i] or ""]
        if not any(values):
            continue
        m = merged.get(t)
        if m is None:
            k = known.get(t)
            m = merged[t] = Known(*k.values(), k.from_root, k.pending_since) if k else Known()
        _merge(m, values, root=not p)

    out = [list(orig[0]), list(orig[1]), list(orig[2])]
    bits = [0] * n
    pending: dict[str, int] = {}
    for i in range(n):
        t, p = trace_ids[i], parent_ids[i]
        if not p:  # a root has no ancestor to wait for: what it lacks stays empty
            if not orig[2][i]:
                out[2][i] = DEFAULT_COHORT
            continue
        need = sum(1 << b for b in range(3) if not orig[b][i])
        if not need:
            continue
        hops = 0
        while need and p and hops < n:  # nearest ancestor in this write that has the field
            j = index.get((t, p))
            if j is None:
                break
            for b in range(3):
                if need & (1 << b) and orig[b][j]:
                    out[b][i] = orig[b][j]
                    need &= ~(1 << b)
            p = parent_ids[j]
            hops += 1
        trace = merged.get(t) or known.get(t)
        if need and trace is not None:
            for b, v in enumerate(trace.values()):
                if need & (1 << b) and v:
                    out[b][i] = v
                    need &= ~(1 << b)
        if need:
            bits[i] = need
            pending[t] = min(pending.get(t, start_ns[i]), start_ns[i])
            for b in range(2):
                if need & (1 << b):
                    out[b][i] = ""
            if need & 4:
                out[2][i] = DEFAULT_COHORT

    result = Plan(out[0], out[1], out[2], bits)
    for t, m in merged.items():
        k = known.get(t)
        gained = k.missing() & ~m.missing() if k else 0
        if k is not None and k.pending_since is not None and gained:
            result.fixups.append(Fixup(t, m.deployment, m.release, m.cohort, m.missing(), k.pending_since))
            m.pending_since = k.pending_since if m.missing() else None
        if k is None or (m.values(), m.from_root, m.pending_since) != (k.values(), k.from_root, k.pending_since):
            result.upserts[t] = m
    for t, since in pending.items():
        m = result.upserts.get(t) or merged.get(t)
        if m is None:
            k = known.get(t)
            m = Known(*k.values(), k.from_root, k.pending_since) if k else Known()
        m.pending_since = since if m.pending_since is None else min(m.pending_since, since)
        result.upserts[t] = m
    result.remember = {t: (m.deployment, m.release, m.cohort, m.from_root) for t, m in merged.items()}
    return result


def _roots_only(trace_ids, deployments, releases, cohorts) -> Plan:
    """The common write (gateway requests, single-span traces, new traces): nothing to inherit,
    nothing waits; only remember each trace's attribution for children that may come later."""
    cohort_out = [c or DEFAULT_COHORT for c in cohorts]
    remember = {t: (d or "", r or "", c or "", True)
                for t, d, r, c in zip(trace_ids, deployments, releases, cohorts) if d or r or c}
    return Plan(list(deployments), list(releases), cohort_out, [0] * len(trace_ids), remember=remember)


def _merge(m: Known, values: list[str], *, root: bool) -> None:
    """The root's values replace what children brought; other spans only fill gaps."""
    current = m.values()
    if root:
        m.deployment, m.release, m.cohort = (v or c for v, c in zip(values, current))
        m.from_root = True
    else:
        m.deployment, m.release, m.cohort = (c or v for v, c in zip(values, current))
