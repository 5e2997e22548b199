"""Project configuration: ``sluice.yaml``, overridable by ``SLUICE_*`` environment variables.

Precedence, highest first: command-line flag > ``SLUICE_*`` variable > ``sluice.yaml`` > default.
The file is found at ``--config``, ``$SLUICE_CONFIG``, or ``./sluice.yaml``; a missing default file
is fine (all defaults), a missing explicit file is an error. Secrets are never written here:
providers and keys name the environment variable that holds them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sluice.errors import ConfigError, Location
from sluice.gateway.config import GatewaySettings
from sluice.rollout.settings import RolloutSettings
from sluice.monitor.config import MonitoringSettings
from sluice.telemetry.config import TelemetrySettings
from sluice.yamlio import load_yaml, validate_model

DEFAULT_FILE = "sluice.yaml"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProviderSettings(Strict):
    """Defaults for every component that names this provider."""

    base_url: str | None = None
    api_key_env: str | None = None
    rate_limit_rps: float | None = Field(default=None, gt=0)


class RunnerSettings(Strict):
    concurrency: int = Field(default=16, gt=0, le=1024)
    retries: int = Field(default=3, ge=0, le=20)
    timeout_s: float = Field(default=60.0, gt=0)


class ServerSettings(Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=4000, gt=0, lt=65536)


class Settings(Strict):
    store: str = "duckdb:///.sluice/sluice.duckdb"
    reports_dir: str = ".sluice/reports"
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    server: ServerSettings = Field(default_factory=ServerSettings)
    telemetry: TelemetrySettings = Field(default_factory=TelemetrySettings)
    gateway: GatewaySettings = Field(default_factory=GatewaySettings)
    rollout: RolloutSettings = Field(default_factory=RolloutSettings)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    source: str | None = Field(default=None, exclude=True)  # the file these came from


# SLUICE_* variable -> dotted settings path
ENV_OVERRIDES = {
    "SLUICE_STORE": "store",
    "SLUICE_REPORTS_DIR": "reports_dir",
    "SLUICE_HOST": "server.host",
    "SLUICE_PORT": "server.port",
    "SLUICE_CONCURRENCY": "runner.concurrency",
    "SLUICE_RETRIES": "runner.retries",
    "SLUICE_TIMEOUT_S": "runner.timeout_s",
}


def load_settings(path: str | Path | None = None, environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    explicit = path or env.get("SLUICE_CONFIG")
    file = Path(explicit) if explicit else Path(DEFAULT_FILE)
    data: dict[str, Any] = {}
    lines: dict = {}
    if file.exists() or explicit:
        loaded, lines = load_yaml(file)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("the configuration must be a mapping", Location(file=str(file), line=1))
        data = loaded or {}
    for var, dotted in ENV_OVERRIDES.items():
        if var in env and env[var] != "":
            _set(data, dotted.split("."), env[var])
    settings = validate_model(Settings, data or {"store": Settings().store}, lines, str(file))
    settings.source = str(file) if file.exists() else None
    return settings


def _set(data: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        data = data.setdefault(key, {})
    data[path[-1]] = value
