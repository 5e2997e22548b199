"""Telemetry settings: where release, cohort and deployment come from, prices, ingest limits.

Attribute lookups are lists tried in order. A name is looked up in the span's attributes, then
in its resource's; ``resource.<name>`` looks only at the resource; ``metadata.<key>`` also reads
``<key>`` inside the JSON-encoded ``metadata`` attribute that OpenInference and traceAI write
(``using_metadata({"tier": "enterprise"})`` ⇒ ``metadata.tier``), then inside the resource's
``metadata`` JSON (traceAI's ``register(metadata=...)``).

traceAI puts the project in the resource (``project_name``, ``project_version_name``): they are
default deployment and release sources, after Sluice's own attributes and the metadata.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from sluice.yamlio import load_yaml, validate_model


class Price(BaseModel):
    """USD per 1M tokens, as in a release's ``cost`` block."""

    model_config = ConfigDict(extra="forbid")
    input: float = Field(ge=0)
    output: float = Field(ge=0)


class TelemetrySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    deployment_attributes: list[str] = Field(
        default_factory=lambda: ["sluice.deployment", "metadata.deployment", "resource.project_name",
                                 "resource.service.name"])
    release_attributes: list[str] = Field(
        default_factory=lambda: ["sluice.release", "metadata.release", "langfuse.release",
                                 "resource.project_version_name", "resource.service.version"])
    route_attributes: list[str] = Field(default_factory=lambda: ["sluice.route", "metadata.route"])
    cohort_attributes: list[str] = Field(default_factory=lambda: ["sluice.cohort", "metadata.cohort"])
    prices: dict[str, Price] = Field(default_factory=dict)
    max_body_bytes: int = Field(default=8 * 1024 * 1024, gt=0)  # as received (compressed)
    max_decompressed_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    batch_max_spans: int = Field(default=20_000, gt=0)  # spans per committed write
    queue_max_spans: int = Field(default=200_000, gt=0)  # back-pressure (503) beyond this
    # decode processes; None = one per CPU, used only for JSON bodies when the compiled protobuf
    # decoder (sluice.telemetry.fastpath) is in use; 0 = decode everything in the server process
    ingest_workers: int | None = Field(default=None, ge=0)
    decode_queue_max_bytes: int = Field(default=128 * 1024 * 1024, gt=0)  # bodies waiting to be decoded (503)


def load_telemetry_settings(path: str | Path) -> TelemetrySettings:
    """Read a YAML file holding just these settings (``sluice serve --telemetry FILE``)."""
    data, lines = load_yaml(Path(path))
    return validate_model(TelemetrySettings, data or {}, lines, str(path))
