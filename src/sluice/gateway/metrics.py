"""The gateway's Prometheus metrics (``GET /metrics``, text exposition format 0.0.4).

Counters and histograms live in plain dicts updated once per request, after the answer has been
sent (``observe``), so the request path pays a few dictionary updates and no lock (one event
loop). The exposition is written by hand: the format is small and stable, and it saves a
dependency. Labels come from the gateway's own vocabulary (deployment names it serves, routes,
error kinds, status codes); an unknown ``model`` is counted as ``deployment="_unknown"`` so a
client cannot grow the label set.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import Callable, Iterable

from sluice.gateway.spans import UNKNOWN_DEPLOYMENT, RequestRecord

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
TOTAL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
OVERHEAD_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
UNKNOWN = UNKNOWN_DEPLOYMENT


class Histogram:
    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple[str, ...], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


class GatewayMetrics:
    def __init__(self, known: Callable[[str], bool]):
        self._known = known
        self.requests: dict[tuple[str, str, str], int] = defaultdict(int)  # deployment, route, status
        self.upstream_errors: dict[tuple[str, str], int] = defaultdict(int)  # deployment, kind
        self.fallbacks: dict[str, int] = defaultdict(int)
        self.cache: dict[tuple[str, str], int] = defaultdict(int)  # deployment, hit|miss
        self.total: dict[tuple[str, str], Histogram] = {}
        self.overhead: dict[tuple[str, str], Histogram] = {}

    def deployment(self, name: str) -> str:
        return name if name and self._known(name) else UNKNOWN

    def observe(self, rec: RequestRecord, elapsed_s: float) -> None:
        dep = self.deployment(rec.deployment)
        route = rec.route or "none"
        self.requests[(dep, route, str(rec.http_status))] += 1
        for err in rec.errors:
            kind = err.rsplit(": ", 1)[-1].replace(" ", "_")
            self.upstream_errors[(dep, kind)] += 1
        if rec.fallback_used:
            self.fallbacks[dep] += 1
        key = (dep, route)
        total = self.total.get(key)
        if total is None:
            total = self.total[key] = Histogram(TOTAL_BUCKETS)
            self.overhead[key] = Histogram(OVERHEAD_BUCKETS)
        total.observe(elapsed_s)
        self.overhead[key].observe(max(elapsed_s - rec.upstream_s, 0.0))

    def cache_lookup(self, deployment: str, hit: bool) -> None:
        self.cache[(self.deployment(deployment), "hit" if hit else "miss")] += 1

    def render(self, gauges: dict[str, tuple[str, str, float]]) -> bytes:
        """The exposition; ``gauges`` adds process-wide counters: name -> (type, help, value)."""
        out: list[str] = []

        def family(name: str, kind: str, help_: str, samples: Iterable[str]) -> None:
            out.append(f"# HELP {name} {help_}")
            out.append(f"# TYPE {name} {kind}")
            out.extend(samples)

        counters = (
            ("sluice_gateway_requests_total", "Gateway requests by deployment, route and HTTP status.",
             ("deployment", "route", "status"), self.requests),
            ("sluice_gateway_upstream_errors_total", "Failed upstream attempts by kind.",
             ("deployment", "kind"), self.upstream_errors),
            ("sluice_gateway_fallbacks_total", "Requests answered by a fallback model.",
             ("deployment",), {(k,): v for k, v in self.fallbacks.items()}),
            ("sluice_gateway_cache_lookups_total", "Semantic cache lookups by result (hit, miss).",
             ("deployment", "result"), self.cache),
        )
        for name, help_, label_names, counts in counters:
            family(name, "counter", help_,
                   (f"{name}{_labels(label_names, k)} {v}" for k, v in sorted(counts.items())))
        for name, (kind, help_, value) in gauges.items():
            family(name, kind, help_, [f"{name} {_number(value)}"])
        for name, help_, hists in (
                ("sluice_gateway_request_duration_seconds", "Whole request, until the last byte.", self.total),
                ("sluice_gateway_overhead_seconds", "Request time not spent waiting on upstreams.", self.overhead)):
            samples = []
            for key, h in sorted(hists.items()):
                cumulative = 0
                for bound, n in zip((*h.bounds, float("inf")), h.counts):
                    cumulative += n
                    le = 'le="' + ("+Inf" if bound == float("inf") else _number(bound)) + '"'
                    samples.append(f"{name}_bucket{_labels(('deployment', 'route'), key, le)} {cumulative}")
                samples.append(f"{name}_sum{_labels(('deployment', 'route'), key)} {_number(h.sum)}")
                samples.append(f"{name}_count{_labels(('deployment', 'route'), key)} {h.count}")
            family(name, "histogram", help_, samples)
        return ("\n".join(out) + "\n").encode()
