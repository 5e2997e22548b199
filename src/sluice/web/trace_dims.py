"""Where each evaluated or feedback-bearing trace was served, so the dashboard joins small tables.

The evaluator fail rate and the feedback rate of an arm need, for every evaluation result and
feedback event, the deployment, route, cohort and time of its trace's request span. Joining
``span_evals``/``feedback`` to ``spans`` on ``trace_id`` at page time hashes the trace id of every
request span in the window: ~1 s per statement for a 7-day window over 10M spans on a busy
2-core machine. ``ui_trace_dims`` keeps those few columns for just the traces that have an
evaluation or feedback (a few percent of traces), filled incrementally by ``TraceDims.refresh``:
each round lists the traces whose evaluations or feedback arrived since the last round (plus an
hour of grace for feedback that came before its trace) and are not in the table yet, from the two
small tables; only when there are some does it read the span table (one statement: a scan of
the request spans' ``trace_id`` over the last 8 days). Pages then join
``span_evals``/``feedback`` with this table only.

Rounds run in a background thread every ``interval_s`` while the dashboard is being looked at,
and synchronously before a page when the last round is older than ``max_lag_s`` (the first view
after an idle spell), so a page is at most ``max_lag_s`` behind.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sluice.store.migrations import migration

log = logging.getLogger("sluice.web")
LOOKBACK_S = 8 * 86_400  # a little more than the longest window the dashboard shows (7d)
GRACE_S = 3_600  # feedback or an evaluation may arrive before its trace: looked up again for an hour
PRUNE_EVERY_S = 3_600  # rows of traces older than LOOKBACK_S are deleted at most this often

migration(
    "1401_ui_trace_dims",
    """
    CREATE TABLE IF NOT EXISTS ui_trace_dims (
        trace_id TEXT NOT NULL,
        start_ns {bigint} NOT NULL,
        deployment TEXT NOT NULL,
        release TEXT NOT NULL,
        route TEXT NOT NULL,
        cohort TEXT NOT NULL
    );
    """,
)


class TraceDims:
    def __init__(self, store: Any, *, interval_s: float = 30.0, max_lag_s: float = 60.0, idle_s: float = 600.0):
        self.store = store
        self.interval_s = interval_s
        self.max_lag_s = max_lag_s
        self.idle_s = idle_s
        self._since: float | None = None  # created_at watermark of the last round (seconds)
        self._last_round = 0.0  # monotonic
        self._last_view = 0.0
        self._pruned = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> int:
        """One round; returns the request spans added. Safe to call from any thread."""
        with self._lock:
            now = time.time()
            since = (self._since if self._since is not None else now - LOOKBACK_S) - GRACE_S
            db = self.store.db
            pending = [r[0] for r in db.query("""
                SELECT DISTINCT trace_id FROM (SELECT trace_id FROM span_evals WHERE created_at >= ?
                                               UNION SELECT trace_id FROM feedback WHERE created_at >= ?) c
                WHERE trace_id NOT IN (SELECT trace_id FROM ui_trace_dims)""", [since, since])]
            added = 0
            if pending:
                before = db.query_one("SELECT count(*) FROM ui_trace_dims")[0]
                if len(pending) <= 5000:
                    wanted, params = ", ".join("?" for _ in pending), list(pending)
                else:  # a catch-up (first round, or after a long idle spell): one statement
                    wanted = ("SELECT trace_id FROM span_evals WHERE created_at >= ? "
                              "UNION SELECT trace_id FROM feedback WHERE created_at >= ?")
                    params = [since, since]
                db.execute(f"""
                    INSERT INTO ui_trace_dims (trace_id, start_ns, deployment, release, route, cohort)
                    SELECT s.trace_id, s.start_ns, s.deployment, s.release, s.route, s.cohort FROM spans s
                    WHERE s.is_request AND s.start_ns >= ? AND s.trace_id IN ({wanted})
                      AND s.trace_id NOT IN (SELECT trace_id FROM ui_trace_dims)""",
                           [int((now - LOOKBACK_S) * 1e9), *params])
                added = db.query_one("SELECT count(*) FROM ui_trace_dims")[0] - before
            if now - self._pruned > PRUNE_EVERY_S:  # the pages never look further back than 7 days
                db.execute("DELETE FROM ui_trace_dims WHERE start_ns < ?", [int((now - LOOKBACK_S) * 1e9)])
                self._pruned = now
            self._since = now
            self._last_round = time.monotonic()
            return added

    def before_page(self) -> None:
        """Called by every page that shows evaluation or feedback figures."""
        self._last_view = time.monotonic()
        if time.monotonic() - self._last_round > self.max_lag_s:
            self.refresh()
        self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="sluice-ui-dims", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            if time.monotonic() - self._last_view > self.idle_s:
                return  # nobody is looking: stop until the next page view
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - the next round retries; pages fall back to a sync round
                log.warning("dashboard: refreshing trace dimensions failed", exc_info=True)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
