"""``rollout:`` in ``sluice.yaml``: how often the controller looks, its lease, and where decisions go.

    rollout:
      interval_s: 10            # one look per interval (small in tests)
      settle_s: 5               # a look ends this long before now: spans still queued land in the next
      lease_ttl_s: 30           # a replica that stops renewing loses the controller role after this
      require_gate: true        # live canary traffic needs a stored passing gate (--force --reason overrides)
      webhook:
        url: https://ci.example.com/hooks/sluice
        secret_env: SLUICE_WEBHOOK_SECRET   # HMAC-SHA256 key, read from this variable at send time
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WebhookSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str | None = None
    secret_env: str | None = Field(default=None, description="environment variable holding the HMAC secret")
    timeout_s: float = Field(default=5.0, gt=0)
    max_attempts: int = Field(default=8, ge=1, le=50)
    backoff_base_s: float = Field(default=1.0, gt=0)
    backoff_cap_s: float = Field(default=300.0, gt=0)


class RolloutSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool = Field(default=True, description="run the controller in 'sluice serve'")
    interval_s: float = Field(default=10.0, gt=0)
    settle_s: float = Field(default=5.0, ge=0)
    lease_ttl_s: float = Field(default=30.0, gt=0)
    require_gate: bool = True
    webhook: WebhookSettings = Field(default_factory=WebhookSettings)
    online_eval_queue: int = Field(default=1000, gt=0, description="traces waiting for online evaluation")
    online_eval_workers: int = Field(default=1, gt=0, le=16)

    @model_validator(mode="after")
    def _ttl(self) -> "RolloutSettings":
        if self.lease_ttl_s <= self.interval_s:
            raise ValueError("lease_ttl_s must be longer than interval_s, or the lease lapses between looks")
        return self
