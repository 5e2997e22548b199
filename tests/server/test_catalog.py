"""GET /api/releases, /api/datasets, /api/runs, /api/gates over a real server and store."""

from __future__ import annotations

import httpx
import pytest

from sluice.auth import create_key
from sluice.server.app import create_app
from sluice.server.catalog import router as catalog
from sluice.server.runner import running
from sluice.store import DatasetRecord, GateRecord, ReleaseRecord


@pytest.fixture
def seeded(duckdb_store):
    s = duckdb_store
    s.put_release(ReleaseRecord("sha256:aaaa1111", "bot", "1.0", {"name": "bot"}, {"p.jinja": "sha256:f"},
                                created_at=1.0))
    s.put_release(ReleaseRecord("sha256:bbbb2222", "bot", "1.1", {"name": "bot"}, {}, created_at=2.0))
    s.put_dataset(DatasetRecord("support", "sha256:d1", 1, {"c": 1}), [{"id": "1", "cohort": "c"}])
    s.put_gate(GateRecord("gate-1234", "sha256:bbbb2222", "sha256:aaaa1111", "support", "sha256:d1",
                          "sha256:p", "fail", 1, {"reasons": ["groundedness in billing"]}))
    return s


def test_catalog_reads(seeded):
    with running(create_app(seeded, routers=[catalog])) as url:
        c = httpx.Client(base_url=url)
        assert [r["version"] for r in c.get("/api/releases").json()["releases"]] == ["1.1", "1.0"]
        one = c.get("/api/releases/bot@1.0").json()
        assert (one["digest"], one["manifest"]) == ("sha256:aaaa1111", {"name": "bot"})
        assert c.get("/api/releases/sha256:bbbb").json()["version"] == "1.1"
        assert c.get("/api/releases/nope@9").status_code == 404
        assert c.get("/api/datasets").json()["datasets"][0]["cohorts"] == {"c": 1}
        assert c.get("/api/gates").json()["gates"][0]["verdict"] == "fail"
        assert c.get("/api/gates/gate-12").json()["summary"] == {"reasons": ["groundedness in billing"]}
        assert c.get("/api/gates/gate-9").status_code == 404
        assert c.get("/api/runs").json() == {"runs": []}


def test_catalog_needs_an_admin_key_once_keys_exist(seeded):
    _, ingest = create_key(seeded, "ci", "ingest")
    _, admin = create_key(seeded, "ops", "admin")
    with running(create_app(seeded, routers=[catalog])) as url:
        c = httpx.Client(base_url=url)
        assert c.get("/api/gates").status_code == 401
        assert c.get("/api/gates", headers={"authorization": f"Bearer {ingest}"}).status_code == 403
        assert c.get("/api/gates", headers={"authorization": f"Bearer {admin}"}).status_code == 200


def test_a_release_lookup_never_reads_the_servers_files(seeded, tmp_path, monkeypatch):
    """GET /api/releases/{ref} with a ref that names a release folder in the server's working
    directory (or '.') used to load and register it: a reader's GET wrote to the store."""
    folder = tmp_path / "shipit"
    folder.mkdir()
    (folder / "release.yaml").write_text("name: shipit\nversion: '9'\ncomponents:\n  responder:\n"
                                         "    provider: openai\n    model: m\n    base_url: http://127.0.0.1:9/v1\n")
    (tmp_path / "release.yaml").write_text((folder / "release.yaml").read_text())
    monkeypatch.chdir(tmp_path)
    with running(create_app(seeded, routers=[catalog])) as url:
        c = httpx.Client(base_url=url)
        r = c.get("/api/releases/shipit")
        assert r.status_code == 404 and "shipit" in r.text
        assert c.get("/api/releases/bot").json()["version"] == "1.1"
    from sluice.errors import NotFoundError
    from sluice.release.registry import resolve_release

    for ref in (".", "shipit"):  # clients normalise '.' away; the resolver refuses it too
        with pytest.raises(NotFoundError):
            resolve_release(seeded, ref, paths=False)
    assert [r.name for r in seeded.list_releases()] == ["bot", "bot"]
