"""Which arm of a deployment serves a request, and who the request is (sticky key, cohort).

Assignment is deterministic: ``blake2b(salt, user key) mod 10000 < weight_bp`` puts a user on
the canary, so the same user stays on one arm for the whole rollout and widening the weight only
moves users from stable to canary, never back. The shadow draw uses an independent hash (another
salt suffix) so mirroring is not correlated with the canary split. A request without a user key
cannot be sticky and is drawn at random.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Any, Mapping

from sluice.gateway.config import Deployment, GatewaySettings
from sluice.telemetry.values import bound_id

STABLE, CANARY, SHADOW, FALLBACK, CACHE = "stable", "canary", "shadow", "fallback", "cache"
BUCKETS = 10_000
_rng = random.Random()


def bucket(salt: str, key: str) -> int:
    """A stable bucket in [0, 10000) for (salt, key)."""
    h = hashlib.blake2b(key.encode(), digest_size=8, key=salt.encode()[:64]).digest()
    return int.from_bytes(h, "big") % BUCKETS


@dataclass(frozen=True, slots=True)
class Identity:
    user_key: str | None
    cohort: str
    session_id: str | None


class Identifier:
    """Reads the sticky user key and the cohort from a parsed request body and its headers."""

    def __init__(self, settings: GatewaySettings):
        self.sources = [self._source(s) for s in settings.sticky_keys]
        self.cohort_header = settings.cohort_header
        self.cohort_key = settings.cohort_metadata_key
        self.cohort_by_user = settings.cohort_by_user
        self.default_cohort = settings.default_cohort
        self.session_headers = [s.split(":", 1)[1].lower() for s in settings.sticky_keys if s.startswith("header:")]

    @staticmethod
    def _source(spec: str):
        if spec == "user":
            return lambda body, headers: body.get("user")
        if spec.startswith("header:"):
            name = spec.split(":", 1)[1].lower()
            return lambda body, headers: headers.get(name)
        key = spec.split(".", 1)[1]
        return lambda body, headers: (body.get("metadata") or {}).get(key) if isinstance(body.get("metadata"), dict) else None

    def identify(self, body: Mapping[str, Any], headers: Mapping[str, str]) -> Identity:
        user_key = None
        for source in self.sources:
            v = source(body, headers)
            if v not in (None, ""):
                user_key = str(v)
                break
        cohort = headers.get(self.cohort_header)
        if not cohort:
            meta = body.get("metadata")
            if isinstance(meta, dict) and meta.get(self.cohort_key) not in (None, ""):
                cohort = str(meta[self.cohort_key])
        if not cohort and user_key is not None:
            cohort = self.cohort_by_user.get(user_key)
        session = next((headers[h] for h in self.session_headers if headers.get(h)), None)
        # bounded: a client's 3 MB "user" must not become a 3 MB column in every span
        return Identity(bound_id(user_key), bound_id(cohort or self.default_cohort), bound_id(session))


def choose_arm(name: str, deployment: Deployment, identity: Identity) -> str:
    """``stable`` or ``canary`` for this user and cohort."""
    canary = deployment.canary
    if canary is None or canary.weight_bp <= 0:
        return STABLE
    if identity.cohort in canary.never_cohorts:
        return STABLE
    if canary.only_cohorts and identity.cohort not in canary.only_cohorts:
        return STABLE
    if canary.weight_bp >= BUCKETS:
        return CANARY
    salt = deployment.salt or name
    b = bucket(salt, identity.user_key) if identity.user_key is not None else _rng.randrange(BUCKETS)
    return CANARY if b < canary.weight_bp else STABLE


def mirror_this(name: str, deployment: Deployment, identity: Identity) -> bool:
    shadow = deployment.shadow
    if shadow is None or shadow.percent <= 0:
        return False
    threshold = int(round(shadow.percent * 100))
    if threshold >= BUCKETS:
        return True
    salt = (deployment.salt or name) + "/shadow"
    b = bucket(salt, identity.user_key) if identity.user_key is not None else _rng.randrange(BUCKETS)
    return b < threshold
