"""Deployments made ready to route: releases resolved and prepared, candidate chains built.

``Resolver`` keeps prepared releases by digest, so reloading deployments (a weight change from
another replica) reuses them — and their scripted models — instead of preparing them again.
Resolution reads the store: it runs at start-up and in the reload thread, never per request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sluice.errors import ConfigError, Location, NotFoundError
from sluice.gateway.config import Deployment
from sluice.gateway.execute import Candidate
from sluice.gateway.releases import PreparedRelease, prepare
from sluice.gateway.routing import CANARY, FALLBACK, SHADOW, STABLE
from sluice.release.registry import resolve_bundle


@dataclass
class ResolvedDeployment:
    name: str
    config: Deployment
    stable: PreparedRelease
    canary: PreparedRelease | None
    shadow: PreparedRelease | None
    stable_chain: list[Candidate]
    canary_chain: list[Candidate]
    version: int = 0

    def releases(self) -> list[tuple[str, PreparedRelease]]:
        out = [(STABLE, self.stable)]
        if self.canary is not None:
            out.append((CANARY, self.canary))
        if self.shadow is not None:
            out.append((SHADOW, self.shadow))
        return out


def chain_of(release: PreparedRelease, route: str) -> list[Candidate]:
    return [Candidate(release, t, route if i == 0 else FALLBACK) for i, t in enumerate(release.chain)]


class Resolver:
    def __init__(self, store: Any):
        self.store = store
        self._prepared: dict[str, PreparedRelease] = {}

    def release(self, ref: str, field: str) -> PreparedRelease:
        """Raises ``ConfigError`` naming ``gateway.deployments.<field>`` for a release that cannot be served."""
        try:
            bundle = resolve_bundle(self.store, ref)
            prepared = self._prepared.get(bundle.digest)
            if prepared is None:
                prepared = self._prepared[bundle.digest] = prepare(bundle)
        except (ConfigError, NotFoundError) as e:
            raise ConfigError(e.message, Location(field=f"gateway.deployments.{field}")) from None
        return prepared

    def deployment(self, name: str, dep: Deployment, version: int = 0) -> ResolvedDeployment:
        stable = self.release(dep.stable, f"{name}.stable")
        canary = self.release(dep.canary.release, f"{name}.canary.release") if dep.canary else None
        shadow = self.release(dep.shadow.release, f"{name}.shadow.release") if dep.shadow else None
        stable_chain = chain_of(stable, STABLE)
        canary_chain = chain_of(canary, CANARY) if canary else []
        if canary and dep.fallback_to_stable:
            canary_chain += [Candidate(stable, t, FALLBACK) for t in stable.chain]
        return ResolvedDeployment(name, dep, stable, canary, shadow, stable_chain, canary_chain, version)
