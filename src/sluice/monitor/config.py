"""Monitors and alert webhooks, under ``monitoring:`` in ``sluice.yaml``::

    monitoring:
      interval_s: 60          # how often the server evaluates every monitor
      renotify_s: 3600        # an open alert is sent again after this long (0: never)
      webhooks:
        ops: {url: "https://hooks.example/sluice", format: json, secret_env: SLUICE_ALERT_SECRET}
        chat: {url: "https://hooks.slack.com/services/…", format: slack}
      monitors:
        - name: support-errors
          deployment: support
          cohort: "*"          # each cohort on its own; omit for all traffic; or one cohort's name
          metric: error_rate
          window: 15m
          threshold: 0.05      # fires above it (below it for thumbs_up_rate)
          min_requests: 20
          notify: [ops, chat]
        - name: support-latency
          deployment: support
          metric: latency_p95_ms
          baseline: {window: 24h, factor: 1.5}   # against the same release's previous 24 h

Secrets are never written here: ``secret_env`` names the environment variable that holds the
HMAC key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sluice.errors import SluiceError
from sluice.telemetry.timespec import parse_duration

# metric -> True when a higher value is worse
METRICS: dict[str, bool] = {
    "error_rate": True, "fallback_rate": True, "guardrail_block_rate": True, "latency_p95_ms": True,
    "latency_p99_ms": True, "cost_per_request": True, "eval_fail_rate": True, "thumbs_down_rate": True,
    "escalation_rate": True, "refund_rate": True, "manual_override_rate": True, "thumbs_up_rate": False,
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _duration(value: str | float, field: str) -> float:
    try:
        seconds = float(value) if isinstance(value, (int, float)) else parse_duration(str(value), field)
    except SluiceError as e:  # pydantic turns ValueError into a located validation error
        raise ValueError(e.message) from None
    if seconds <= 0:
        raise ValueError(f"{field} must be positive")
    return seconds


class Baseline(Strict):
    """Compare with the same release's metric over the ``window`` just before the monitor's own."""

    window: str = "24h"
    factor: float = Field(default=1.5, gt=0, description="fires past baseline × factor (÷ factor when lower is worse)")
    min_delta: float = Field(default=0.0, ge=0, description="and past it by at least this much")

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        _duration(v, "baseline.window")
        return v

    @property
    def window_s(self) -> float:
        return _duration(self.window, "baseline.window")


class Monitor(Strict):
    name: str = Field(min_length=1, max_length=200)
    deployment: str = Field(min_length=1)
    cohort: str | None = Field(default=None, description="a cohort, '*' for each cohort separately, None for all")
    metric: str
    window: str = "15m"
    threshold: float | None = None
    baseline: Baseline | None = None
    min_requests: int = Field(default=20, gt=0, description="fewer requests in the window: no judgement")
    notify: list[str] = Field(default_factory=list, description="webhook names; '*' for every webhook")

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        if v not in METRICS:
            raise ValueError(f"unknown metric '{v}': use one of {', '.join(METRICS)}")
        return v

    @field_validator("window")
    @classmethod
    def _window(cls, v: str) -> str:
        _duration(v, "window")
        return v

    @model_validator(mode="after")
    def _one_limit(self) -> "Monitor":
        if (self.threshold is None) == (self.baseline is None):
            raise ValueError("give threshold or baseline (one of them)")
        return self

    @property
    def window_s(self) -> float:
        return _duration(self.window, "window")

    @property
    def higher_is_worse(self) -> bool:
        return METRICS[self.metric]


class Webhook(Strict):
    url: str = Field(pattern=r"^https?://")
    format: Literal["json", "slack"] = "json"
    secret_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=1.0, ge=0, le=60)
    timeout_s: float = Field(default=5.0, gt=0, le=60)


class MonitoringSettings(Strict):
    interval_s: float = Field(default=60.0, gt=0)
    renotify_s: float = Field(default=3600.0, ge=0, description="re-send an open alert after this long (0: never)")
    recent_s: float = Field(default=7 * 86400.0, gt=0, description="resolved alerts listed this long")
    webhooks: dict[str, Webhook] = Field(default_factory=dict)
    monitors: list[Monitor] = Field(default_factory=list)

    @model_validator(mode="after")
    def _references(self) -> "MonitoringSettings":
        names = [m.name for m in self.monitors]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"monitor names must be unique: {', '.join(dupes)}")
        for m in self.monitors:
            unknown = [w for w in m.notify if w not in self.webhooks and w != "*"]
            if unknown:
                raise ValueError(f"monitor '{m.name}' notifies unknown webhook(s) {', '.join(unknown)}")
        return self
