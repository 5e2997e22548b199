"""Plain records the store reads and writes. JSON-like payloads stay dicts at this layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ReleaseRecord:
    digest: str
    name: str
    version: str
    manifest: dict[str, Any]  # the normalised release.yaml content
    files: dict[str, str]  # bundle-relative path -> file content digest
    created_at: float = 0.0
    source: str | None = None  # where it was registered from


@dataclass
class DatasetRecord:
    name: str
    version: str  # content digest of the rows
    row_count: int
    cohorts: dict[str, int]
    created_at: float = 0.0
    description: str = ""
    source: str | None = None


@dataclass
class RunRecord:
    id: str
    release_digest: str
    dataset_name: str
    dataset_version: str
    evaluators_digest: str
    evaluators: list[dict[str, Any]]
    status: str = "running"  # running | done | interrupted
    created_at: float = 0.0
    finished_at: float | None = None
    summary: dict[str, Any] = field(default_factory=dict)


@dataclass
class GateRecord:
    id: str
    candidate_digest: str
    baseline_digest: str
    dataset_name: str
    dataset_version: str
    policy_digest: str
    verdict: str  # pass | fail | inconclusive
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
    candidate_run: str | None = None
    baseline_run: str | None = None
    created_at: float = 0.0
