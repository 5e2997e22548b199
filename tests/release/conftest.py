"""Fixtures for release tests: a dict-backed store and a writer for release folders."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from release_fixtures import BASE_FILES, BASE_YAML
from sluice.store.records import ReleaseRecord


class FakeReleaseStore:
    """Only the release and blob parts of the Store protocol, in dicts."""

    url = "memory://"

    def __init__(self):
        self.releases: dict[str, ReleaseRecord] = {}
        self.blobs: dict[str, bytes] = {}
        self.clock = 0.0

    def put_release(self, rec: ReleaseRecord) -> bool:
        if rec.digest in self.releases:
            return False
        self.clock += 1  # strictly increasing, so "newest" is well defined without sleeping
        rec.created_at = self.clock
        self.releases[rec.digest] = rec
        return True

    def get_release(self, digest: str) -> ReleaseRecord | None:
        return self.releases.get(digest)

    def list_releases(self, name: str | None = None) -> list[ReleaseRecord]:
        recs = [r for r in self.releases.values() if name is None or r.name == name]
        return sorted(recs, key=lambda r: r.created_at, reverse=True)

    def put_blobs(self, blobs: dict[str, bytes]) -> None:
        self.blobs.update(blobs)

    def get_blobs(self, digests: list[str]) -> dict[str, bytes]:
        return {d: self.blobs[d] for d in digests if d in self.blobs}


@pytest.fixture
def fake_store() -> FakeReleaseStore:
    return FakeReleaseStore()


@pytest.fixture
def make_release(tmp_path):
    """make_release(yaml=None, files=None, folder="rel") -> folder path; files override BASE_FILES."""

    def make(yaml: str | None = None, files: dict[str, str | bytes | None] | None = None, folder: str = "rel") -> Path:
        root = tmp_path / folder
        root.mkdir(parents=True, exist_ok=True)
        (root / "release.yaml").write_text(textwrap.dedent(yaml) if yaml is not None else BASE_YAML, encoding="utf-8")
        merged: dict[str, str | bytes | None] = {**BASE_FILES, **(files or {})}
        for rel, body in merged.items():
            if body is None:
                continue
            p = root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(body if isinstance(body, bytes) else body.encode("utf-8"))
        return root

    return make
