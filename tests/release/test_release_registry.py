from __future__ import annotations

import pytest

from release_fixtures import BASE_YAML
from sluice.errors import ConfigError, DataError, NotFoundError
from sluice.release.loader import load_release
from sluice.release.registry import load_bundle, register, resolve_bundle, resolve_release
from sluice.store.records import ReleaseRecord


def test_register_is_idempotent_and_stores_file_bodies(fake_store, make_release):
    bundle = load_release(make_release())
    record, created = register(fake_store, bundle)
    assert created and record.digest == bundle.digest
    assert record.files == bundle.file_digests and record.manifest == bundle.manifest
    assert set(fake_store.blobs) == set(bundle.file_digests.values())
    again, created_again = register(fake_store, load_release(make_release()))
    assert not created_again and again is record and len(fake_store.releases) == 1


def test_stored_release_rebuilds_without_its_folder(fake_store, make_release, tmp_path):
    bundle = load_release(make_release())
    record, _ = register(fake_store, bundle)
    import shutil
    shutil.rmtree(tmp_path / "rel")
    stored = load_bundle(fake_store, record)
    assert stored.digest == bundle.digest and stored.files == bundle.files
    assert stored.release == bundle.release and stored.root is None


def test_altered_blob_is_detected(fake_store, make_release):
    record, _ = register(fake_store, load_release(make_release()))
    digest = record.files["prompts/answer.j2"]
    fake_store.blobs[digest] = b"tampered {{ question }}"
    with pytest.raises(DataError, match="does not match its content"):
        load_bundle(fake_store, record)
    del fake_store.blobs[digest]
    with pytest.raises(DataError, match="lacks the body of prompts/answer.j2"):
        load_bundle(fake_store, record)


@pytest.fixture
def two_versions(fake_store, make_release):
    v1, _ = register(fake_store, load_release(make_release(folder="v1")))
    v2, _ = register(fake_store, load_release(make_release(
        BASE_YAML.replace('version: "1.0"', 'version: "1.1"').replace("temperature: 0.2", "temperature: 0.4"), folder="v2")))
    return v1, v2


def test_resolve_by_name_label_and_digest(fake_store, two_versions):
    v1, v2 = two_versions
    assert resolve_release(fake_store, "support-bot") is v2
    assert resolve_release(fake_store, "support-bot@1.0") is v1
    assert resolve_release(fake_store, v1.digest) is v1
    assert resolve_release(fake_store, v1.digest[:7 + 8]) is v1  # sha256: + 8 hex
    assert resolve_release(fake_store, v2.digest[7:7 + 10]) is v2  # bare prefix
    assert resolve_release(fake_store, v2.digest.upper().replace("SHA256:", "sha256:")) is v2


def test_relabelled_content_resolves_to_newest(fake_store, make_release, two_versions):
    _, v2 = two_versions
    edited = BASE_YAML.replace('version: "1.0"', 'version: "1.1"').replace("temperature: 0.2", "temperature: 0.5")
    v2b, created = register(fake_store, load_release(make_release(edited, folder="v2b")))
    assert created and v2b.digest != v2.digest
    assert resolve_release(fake_store, "support-bot@1.1") is v2b


def test_path_reference_registers_on_the_fly(fake_store, make_release):
    root = make_release()
    record = resolve_release(fake_store, str(root))
    assert fake_store.get_release(record.digest) is record
    assert resolve_release(fake_store, str(root / "release.yaml")) is record
    assert resolve_bundle(fake_store, "support-bot").digest == record.digest


def test_unknown_reference_lists_close_matches(fake_store, two_versions):
    with pytest.raises(NotFoundError, match=r"release 'suport-bot' not found; did you mean support-bot"):
        resolve_release(fake_store, "suport-bot")
    with pytest.raises(NotFoundError, match=r"did you mean support-bot@1\.1, support-bot@1\.0"):
        resolve_release(fake_store, "support-bot@1.2")
    with pytest.raises(NotFoundError, match="not found"):
        resolve_release(fake_store, "sha256:00000000")


def test_empty_store_says_how_to_register(fake_store):
    with pytest.raises(NotFoundError, match="no releases are registered"):
        resolve_release(fake_store, "anything")


def test_ambiguous_prefix_is_a_config_error(fake_store):
    for suffix in ("a" * 60, "b" * 60):
        fake_store.put_release(ReleaseRecord(digest="sha256:abcd" + suffix, name="x", version=suffix[0],
                                             manifest={}, files={}))
    with pytest.raises(ConfigError, match="digest prefix 'sha256:abcd' is ambiguous: 2 releases match"):
        resolve_release(fake_store, "sha256:abcd")
    assert resolve_release(fake_store, "abcdaa").version == "a"  # a longer bare prefix is unique
    with pytest.raises(ConfigError, match="not a usable digest"):
        resolve_release(fake_store, "sha256:ab")


def test_round_trip_through_the_embedded_store(duckdb_store, make_release):
    bundle = load_release(make_release())
    record, created = register(duckdb_store, bundle)
    assert created and not register(duckdb_store, bundle)[1]
    stored = resolve_bundle(duckdb_store, "support-bot@1.0")
    assert stored.digest == bundle.digest and stored.files == bundle.files
