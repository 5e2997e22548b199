"""Monitors evaluated on a schedule inside ``sluice serve``, alerts delivered by webhook.

One replica evaluates: on PostgreSQL the one holding a session advisory lock (taken on the
store's connection, so it passes to another replica when that process or connection ends); on
DuckDB the one process that holds the file. Each tick runs in a worker thread — the store reads,
the judgement and the bounded webhook retries never block the event loop. ``tick(now)`` is also
what tests call, with an explicit clock. Monitors come from ``sluice.yaml`` and from the store
(``stored.save_monitor``, how a promoted rollout adds its watch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import asynccontextmanager
from typing import Any, Callable

from fastapi import APIRouter

from sluice.monitor import alerts as alert_store
from sluice.monitor.alerts import Alert
from sluice.monitor.config import Monitor, MonitoringSettings
from sluice.monitor.judge import Judgement, judge, next_action
from sluice.monitor.measure import ALL, Measurement, measure
from sluice.monitor.stored import stored_monitors
from sluice.monitor.webhook import payload_for, send

log = logging.getLogger("sluice.monitor")
LEADER_LOCK = 0x51_1CE_A1E  # pg advisory lock key of the monitor evaluator


class MonitorService:
    def __init__(self, store: Any, settings: MonitoringSettings, *, post: Callable[..., Any] | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.store = store
        self.settings = settings
        self._post, self._sleep = post, sleep
        self._leader = store.db.dialect.name != "postgres"
        self._task: asyncio.Task | None = None
        self.ticks = 0

    # leadership ------------------------------------------------------------------------------
    def is_leader(self) -> bool:
        """Whether this replica evaluates; tries to become it when not (never blocks)."""
        if not self._leader:
            row = self.store.db.query_one("SELECT pg_try_advisory_lock(?)", [LEADER_LOCK])
            self._leader = bool(row and row[0])
        return self._leader

    # one evaluation ----------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[dict[str, Any]]:
        """Evaluate every monitor once; the notifications sent (or attempted), in order."""
        now = time.time() if now is None else now
        if not self.is_leader():
            return []
        self.ticks += 1
        events: list[dict[str, Any]] = []
        for monitor in self.monitors():
            try:
                events += self._evaluate(monitor, now)
            except Exception:  # noqa: BLE001 - one broken monitor must not silence the others
                log.exception("monitor %s could not be evaluated", monitor.name)
        return events

    def monitors(self) -> list[Monitor]:
        """``sluice.yaml``'s monitors, then stored ones (added by a rollout) of other names."""
        mine = list(self.settings.monitors)
        names = {m.name for m in mine}
        return mine + [m for m in stored_monitors(self.store) if m.name not in names]

    def _evaluate(self, m: Monitor, now: float) -> list[dict[str, Any]]:
        until_ns, since_ns = int(now * 1e9), int((now - m.window_s) * 1e9)
        per_cohort = m.cohort == "*"
        cohort = None if per_cohort or m.cohort is None else m.cohort
        current = measure(self.store, m.metric, m.deployment, since_ns, until_ns, cohort=cohort, per_cohort=per_cohort)
        baseline: dict[str, Measurement] = {}
        if m.baseline is not None:
            release = self._dominant_release(m.deployment, since_ns, until_ns)
            if release is not None:
                start = int((now - m.window_s - m.baseline.window_s) * 1e9)
                baseline = measure(self.store, m.metric, m.deployment, start, since_ns, cohort=cohort,
                                   per_cohort=per_cohort, release=release)
        if cohort is not None:  # one named cohort: its alerts are keyed by its name
            current = {cohort: v for v in current.values()}
            baseline = {cohort: v for v in baseline.values()}
        opened = alert_store.open_alerts(self.store, m.name)
        keys = set(current) | set(opened) | ({m.cohort or ALL} if not per_cohort else set())
        events = []
        for key in sorted(keys):
            j = judge(m, current.get(key), baseline.get(key))
            events += self._apply(m, key, j, opened.get(key), now)
        return events

    def _dominant_release(self, deployment: str, since_ns: int, until_ns: int) -> str | None:
        row = self.store.db.query_one(
            "SELECT release, count(*) AS n FROM spans WHERE deployment = ? AND is_request AND route <> 'shadow' "
            "AND start_ns >= ? AND start_ns < ? GROUP BY release ORDER BY n DESC LIMIT 1",
            [deployment, since_ns, until_ns])
        return row[0] if row else None

    def _apply(self, m: Monitor, key: str, j: Judgement, alert: Alert | None, now: float) -> list[dict[str, Any]]:
        action = next_action(alert is not None, alert.notified_at if alert else None, j, now, self.settings.renotify_s)
        if alert is None and action != "fire":
            return []
        if alert is None:
            alert = alert_store.create(self.store, Alert(
                id="", monitor=m.name, cohort=key, deployment=m.deployment, metric=m.metric, status="open",
                value=j.value, limit_value=j.limit, requests=j.requests, reason=j.reason, opened_at=now,
                checked_at=now))
        alert.checked_at = now
        if j.state != "no_data" or action == "resolve":
            alert.value, alert.limit_value, alert.requests, alert.reason = j.value, j.limit, j.requests, j.reason
        events = []
        if action == "resolve":
            alert.status, alert.resolved_at = "resolved", now
        if action != "none":
            event = {"fire": "firing", "renotify": "renotify", "resolve": "resolved"}[action]
            events.append(self._notify(m, alert, event, now))
        alert_store.save(self.store, alert)
        return events

    def _notify(self, m: Monitor, alert: Alert, event: str, now: float) -> dict[str, Any]:
        body = {"event": event, "alert_id": alert.id, "monitor": m.name, "deployment": m.deployment,
                "cohort": alert.cohort, "metric": m.metric, "value": alert.value, "limit": alert.limit_value,
                "requests": alert.requests, "window": m.window, "reason": alert.reason,
                "opened_at": alert.opened_at, "resolved_at": alert.resolved_at, "at": now}
        delivered, errors = [], []
        names = list(self.settings.webhooks) if "*" in m.notify else m.notify
        for name in names:
            hook = self.settings.webhooks.get(name)
            if hook is None:  # a stored monitor naming a webhook sluice.yaml does not define
                errors.append(f"{name}: no such webhook in sluice.yaml")
                continue
            ok, _, error = send(hook, payload_for(hook, body), post=self._post, sleep=self._sleep)
            (delivered if ok else errors).append(name if ok else f"{name}: {error}")
        if delivered or not names:
            alert.notified_at = now
            alert.notifications += 1
        alert.last_error = "; ".join(errors) or None
        return body | {"delivered_to": delivered, "errors": errors}

    # the schedule --------------------------------------------------------------------------------
    async def _loop(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - keep evaluating on the next interval
                log.exception("monitor tick failed")
            await asyncio.sleep(self.settings.interval_s)

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="sluice-monitors")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    @asynccontextmanager
    async def lifespan(self, app: Any = None):
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    @property
    def router(self) -> APIRouter:
        """Include in the server app to run the schedule in its lifespan."""
        return APIRouter(lifespan=self.lifespan)
