"""Gateway configuration: deployments (what ``model`` names), their release arms, and the knobs
of the request path (deadline, retries, circuit breaker, mirroring, body limits).

Lives under ``gateway:`` in ``sluice.yaml``::

    gateway:
      deployments:
        support:
          stable: support-bot@1.0
          canary: {release: support-bot@1.1, weight_bp: 500, only_cohorts: [free]}
          shadow: {release: support-bot@2.0-rc1, percent: 10}

Release references are anything ``sluice.release.registry.resolve_release`` accepts; they are
resolved once when the gateway is built, never per request.
"""

from __future__ import annotations

import os
import re

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

STICKY_SOURCE = re.compile(r"^(user|header:[A-Za-z0-9\-_]+|metadata\.[A-Za-z0-9_.\-]+)$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CanaryArm(Strict):
    release: str
    weight_bp: int = Field(default=0, ge=0, le=10_000, description="share of users on the canary, basis points")
    only_cohorts: list[str] = Field(default_factory=list, description="canary only for these cohorts (empty: all)")
    never_cohorts: list[str] = Field(default_factory=list, description="these cohorts always get stable")

    @model_validator(mode="after")
    def _disjoint(self) -> "CanaryArm":
        both = set(self.only_cohorts) & set(self.never_cohorts)
        if both:
            raise ValueError(f"cohort(s) {', '.join(sorted(both))} are in both only_cohorts and never_cohorts")
        return self


class ShadowArm(Strict):
    release: str
    percent: float = Field(default=100.0, ge=0, le=100, description="share of requests mirrored")


class SemanticCacheSettings(Strict):
    """The semantic cache (``sluice.gateway.semantic_cache``); used by ``low_risk`` deployments only."""

    enabled: bool = False
    threshold: float = Field(default=0.95, gt=0, le=1, description="cosine similarity of the last user messages")
    ttl_s: float = Field(default=3600.0, gt=0)
    max_entries: int = Field(default=10_000, gt=0, description="per cache key (ring buffer)")
    max_keys: int = Field(default=256, gt=0, description="cache keys kept, least recently used evicted")
    tenant_header: str = "x-sluice-tenant"
    tenant_metadata_key: str = "tenant"
    embedder: str = "minilm"
    redis_url: str | None = Field(default=None, description="redis://host:port/db shared by gateway replicas")
    redis_stream: str = "sluice:semantic-cache"


class Deployment(Strict):
    stable: str
    canary: CanaryArm | None = None
    shadow: ShadowArm | None = None
    salt: str | None = Field(default=None, description="rollout salt; a new salt reshuffles users (default: the name)")
    fallback_to_stable: bool = Field(default=True, description="a failing canary falls back to the stable release")
    low_risk: bool = Field(default=False, description="answers may come from the semantic cache")


class GatewaySettings(Strict):
    deployments: dict[str, Deployment] = Field(default_factory=dict)
    # where the sticky user key comes from, first present wins: the request's ``user``,
    # ``header:<name>``, or ``metadata.<key>`` of the request body
    sticky_keys: list[str] = Field(default_factory=lambda: ["user", "header:x-sluice-session", "metadata.user_id"])
    cohort_header: str = "x-sluice-cohort"
    cohort_metadata_key: str = "cohort"
    cohort_by_user: dict[str, str] = Field(default_factory=dict, description="sticky user key -> cohort")
    default_cohort: str = "default"
    deadline_s: float = Field(default=60.0, gt=0, description="whole request, before the first streamed byte")
    retries: int = Field(default=1, ge=0, le=10, description="retries per model before the next fallback")
    backoff_base_s: float = Field(default=0.1, gt=0)
    backoff_cap_s: float = Field(default=2.0, gt=0)
    max_retry_after_s: float = Field(default=5.0, ge=0, description="longer retry-after: go to the next fallback")
    breaker_failures: int = Field(default=5, gt=0, description="consecutive failures that open an upstream's circuit")
    breaker_cooldown_s: float = Field(default=10.0, gt=0)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    mirror_queue: int = Field(default=256, gt=0, description="shadow requests waiting; more are dropped and counted")
    mirror_workers: int = Field(default=4, gt=0, le=256)
    capture_content_chars: int = Field(default=4096, ge=0, description="input/output text kept on spans (0: none)")
    semantic_cache: SemanticCacheSettings = Field(default_factory=SemanticCacheSettings)
    reload_interval_s: float = Field(default=0.25, ge=0, description="how often replicas poll the store's "
                                     "deployment version (0: never reload)")
    max_in_flight: int = Field(default=1000, ge=0, description="chat requests handled at once; beyond it a request "
                               "is answered 503 + retry-after at once instead of queueing (0: no limit)")
    span_writer_nice: int = Field(default=19, ge=0, le=19, description="OS niceness of the server's span writer "
                                  "thread while the gateway runs (0: leave it)")
    shed_retry_after_s: float = Field(default=1.0, gt=0, description="retry-after of a request shed at the limit "
                                      "(the header is rounded up to whole seconds; retry-after-ms is exact)")
    shed_cpu_share: float = Field(default=0.9, ge=0, le=1, description="CPU share of the event loop's thread "
                                  "beyond which a growing share of new chat requests is shed (503) until it falls "
                                  "again; 0 disables; off whenever shed_lag_ms is 0")
    shed_lag_ms: float = Field(default_factory=lambda: _shed_lag_default(), ge=0,
                               description="event-loop lag beyond which new chat requests are shed (503) until it "
                               "falls again; 0 disables (default 30, or SLUICE_SHED_LAG_MS)")

    @field_validator("sticky_keys")
    @classmethod
    def _sources(cls, v: list[str]) -> list[str]:
        for s in v:
            if not STICKY_SOURCE.match(s):
                raise ValueError(f"sticky key source {s!r}: use 'user', 'header:<name>' or 'metadata.<key>'")
        return v

    @field_validator("cohort_header")
    @classmethod
    def _lower(cls, v: str) -> str:
        return v.lower()


def _shed_lag_default() -> float:
    """30 ms, unless ``SLUICE_SHED_LAG_MS`` says otherwise: the test suite sets 0, because a loaded
    CI machine lags every process it runs and a test's requests must not be shed for it."""
    try:
        return max(0.0, float(os.environ.get("SLUICE_SHED_LAG_MS", "30")))
    except ValueError:
        return 30.0
