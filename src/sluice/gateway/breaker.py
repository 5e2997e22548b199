"""A circuit breaker per upstream (endpoint + model).

After ``failures`` consecutive failures the circuit opens: requests skip that upstream (straight
to the next fallback) for ``cooldown_s``. Then it is half-open: one request is let through as a
probe; its success closes the circuit, its failure opens it for another cooldown. Only failures
that say something about the upstream's health count (connection, timeout, 429, 5xx) — a 400 for
a bad request does not.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class _State:
    failures: int = 0
    open_until: float = 0.0
    probe_until: float = 0.0  # a probe is in flight until then (a cancelled probe must not wedge it)


class Breakers:
    def __init__(self, failures: int = 5, cooldown_s: float = 10.0):
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._states: dict[str, _State] = {}
        self.opened = 0  # times any circuit opened, for metrics

    def allow(self, key: str, now: float | None = None) -> bool:
        st = self._states.get(key)
        if st is None or st.failures < self.threshold:
            return True
        now = time.monotonic() if now is None else now
        if now < st.open_until or now < st.probe_until:
            return False
        st.probe_until = now + self.cooldown_s  # half-open: this caller is the probe
        return True

    def success(self, key: str) -> None:
        st = self._states.get(key)
        if st is not None:
            st.failures = 0
            st.probe_until = 0.0

    def failure(self, key: str, now: float | None = None) -> None:
        st = self._states.setdefault(key, _State())
        st.failures += 1
        st.probe_until = 0.0
        if st.failures >= self.threshold:
            if st.failures == self.threshold:
                self.opened += 1
            st.open_until = (time.monotonic() if now is None else now) + self.cooldown_s

    def is_open(self, key: str, now: float | None = None) -> bool:
        st = self._states.get(key)
        now = time.monotonic() if now is None else now
        return st is not None and st.failures >= self.threshold and now < st.open_until
