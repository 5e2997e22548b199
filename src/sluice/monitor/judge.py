"""Pure judgement of one monitor: its measurement against a threshold or its baseline, and what
an open alert should do next. No store, no clock: both are passed in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sluice.monitor.config import Monitor
from sluice.monitor.measure import Measurement

State = Literal["firing", "ok", "no_data"]
Action = Literal["fire", "renotify", "resolve", "none"]


@dataclass(frozen=True)
class Judgement:
    state: State
    value: float | None
    limit: float | None
    requests: int
    reason: str


def judge(monitor: Monitor, current: Measurement | None, baseline: Measurement | None = None) -> Judgement:
    """``no_data`` when the window (or the baseline) holds too few requests: no data is not success."""
    if current is None or current.requests < monitor.min_requests or current.value is None:
        n = current.requests if current else 0
        return Judgement("no_data", current.value if current else None, None, n,
                         f"{n} requests in the window, {monitor.min_requests} needed")
    worse_up = monitor.higher_is_worse
    if monitor.threshold is not None:
        limit = monitor.threshold
        basis = f"threshold {_fmt(limit)}"
    else:
        b = monitor.baseline
        if baseline is None or baseline.requests < monitor.min_requests or baseline.value is None:
            n = baseline.requests if baseline else 0
            return Judgement("no_data", current.value, None, current.requests,
                             f"baseline window holds {n} requests, {monitor.min_requests} needed")
        limit = baseline.value * b.factor + b.min_delta if worse_up else baseline.value / b.factor - b.min_delta
        basis = f"baseline {_fmt(baseline.value)} × {b.factor:g}" if worse_up else \
            f"baseline {_fmt(baseline.value)} ÷ {b.factor:g}"
    bad = current.value > limit if worse_up else current.value < limit
    word = "above" if worse_up else "below"
    reason = (f"{monitor.metric} {_fmt(current.value)} is {word} {basis} ({current.requests} requests)" if bad else
              f"{monitor.metric} {_fmt(current.value)} within {basis} ({current.requests} requests)")
    return Judgement("firing" if bad else "ok", current.value, limit, current.requests, reason)


def next_action(open_alert: bool, last_notified_at: float | None, j: Judgement, now: float,
                renotify_s: float) -> Action:
    """Fire once, stay quiet while open (re-sent after ``renotify_s``), resolve when it clears.
    An open alert whose first message never got through counts as due."""
    if j.state == "firing":
        if not open_alert:
            return "fire"
        if last_notified_at is None or (renotify_s > 0 and now - last_notified_at >= renotify_s):
            return "renotify"
        return "none"
    if j.state == "ok" and open_alert:
        return "resolve"
    return "none"


def _fmt(v: float) -> str:
    return f"{v:.4g}"
