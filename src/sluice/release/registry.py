"""Registering releases in the store and finding them again by any reference a user types.

A stored release is its ``ReleaseRecord`` (normalised manifest; ``files`` = path -> content digest)
plus the file bodies in the store's content-addressed blobs, so a release can be run, shown and
diffed long after its folder is gone.

References, tried in this order:
  ``path/to/release.yaml`` or a folder holding one  -> loaded and registered on the fly
  ``sha256:<hex prefix>`` or a bare hex prefix (>= 6) -> that digest (must be unique)
  ``name@version``                                  -> newest release registered with that label
  ``name``                                          -> newest release of that name
"""

from __future__ import annotations

import difflib
from contextlib import nullcontext
import re
import time
from pathlib import Path

from sluice.audit.log import append_audit, local_actor
from sluice.digest import PREFIX, short
from sluice.errors import ConfigError, NotFoundError
from sluice.release.bundle import ReleaseBundle, bundle_from_stored
from sluice.release.loader import MANIFEST_NAMES, load_release
from sluice.store.base import Store
from sluice.store.records import ReleaseRecord

HEX_PREFIX = re.compile(r"^[0-9a-f]{6,64}$")
MIN_PREFIX = 4  # after an explicit "sha256:"


def register(store: Store, bundle: ReleaseBundle, *, actor: str | None = None) -> tuple[ReleaseRecord, bool]:
    """Store the bundle (blobs first, then the record); ``created`` is False when the digest existed.

    The same ``name@version`` may be registered with different content (editing a candidate and
    re-gating it is normal); the digest is the identity, ``name@version`` resolves to the newest.
    A new release is recorded in the audit log (by ``actor``, default the local user) in the
    same transaction.
    """
    existing = store.get_release(bundle.digest)
    if existing is not None:
        return existing, False
    store.put_blobs({d: bundle.files[p] for p, d in bundle.file_digests.items()})
    record = ReleaseRecord(digest=bundle.digest, name=bundle.release.name, version=bundle.release.version,
                           manifest=bundle.manifest, files=dict(bundle.file_digests), created_at=time.time(),
                           source=bundle.source)
    db = getattr(store, "db", None)  # the SQL stores keep the audit log; a release-only test double has none
    with db.transaction() if db is not None else nullcontext():
        created = store.put_release(record)
        if created and db is not None:
            append_audit(store, actor or local_actor(), "release.registered", f"{record.name}@{record.version}",
                         None, {"digest": record.digest, "name": record.name, "version": record.version,
                                "source": record.source})
    if not created:  # registered concurrently by someone else
        return store.get_release(bundle.digest) or record, False
    return record, True


def resolve_release(store: Store, ref: str, *, paths: bool = True) -> ReleaseRecord:
    """A stored release by name@version, name (newest), digest or digest prefix; with ``paths``
    (the CLI) a release folder or manifest path is registered first. The HTTP API passes
    ``paths=False``: a reader's GET must never read the server's files nor register anything."""
    ref = ref.strip()
    if not ref:
        raise ConfigError("empty release reference")
    if paths and _looks_like_path(ref):
        record, _ = register(store, load_release(ref))
        return record
    if ref.startswith(PREFIX):
        return _by_digest_prefix(store, ref.removeprefix(PREFIX), ref)
    if "@" in ref:
        name, _, version = ref.partition("@")
        matches = [r for r in store.list_releases(name) if r.version == version]
        if matches:
            return matches[0]
        raise _not_found(store, ref)
    if HEX_PREFIX.match(ref):
        found = _digest_matches(store, ref)
        named = store.list_releases(ref)
        if len(found) == 1 or (found and not named):  # a digest wins unless the prefix is ambiguous
            return _by_digest_prefix(store, ref, ref)
        if named:
            return named[0]
    newest = store.list_releases(ref)
    if newest:
        return newest[0]
    raise _not_found(store, ref)


def load_bundle(store: Store, record: ReleaseRecord) -> ReleaseBundle:
    """The runnable bundle of a stored release, file bodies included and checked against the digest."""
    blobs = store.get_blobs(sorted(set(record.files.values())))
    return bundle_from_stored(record.manifest, record.files, blobs, expected_digest=record.digest,
                              source=record.source)


def resolve_bundle(store: Store, ref: str) -> ReleaseBundle:
    """``resolve_release`` then ``load_bundle``: what the runner and ``release diff`` need."""
    return load_bundle(store, resolve_release(store, ref))


def _looks_like_path(ref: str) -> bool:
    p = Path(ref)
    if p.suffix in (".yaml", ".yml") or "/" in ref or ref.startswith("."):
        return True
    return p.is_dir() and any((p / n).is_file() for n in MANIFEST_NAMES)


def _digest_matches(store: Store, hex_prefix: str) -> list[ReleaseRecord]:
    return [r for r in store.list_releases() if r.digest.removeprefix(PREFIX).startswith(hex_prefix.lower())]


def _by_digest_prefix(store: Store, hex_prefix: str, ref: str) -> ReleaseRecord:
    if len(hex_prefix) < MIN_PREFIX or not re.fullmatch(r"[0-9a-fA-F]+", hex_prefix):
        raise ConfigError(f"'{ref}' is not a usable digest: give at least {MIN_PREFIX} hex characters")
    if len(hex_prefix) == 64:
        record = store.get_release(PREFIX + hex_prefix.lower())
        if record is None:
            raise _not_found(store, ref)
        return record
    found = _digest_matches(store, hex_prefix)
    if not found:
        raise _not_found(store, ref)
    if len(found) > 1:
        shown = ", ".join(f"{short(r.digest)} ({r.name}@{r.version})" for r in found[:5])
        raise ConfigError(f"digest prefix '{ref}' is ambiguous: {len(found)} releases match: {shown}")
    return found[0]


def _not_found(store: Store, ref: str) -> NotFoundError:
    records = store.list_releases()
    if not records:
        return NotFoundError(f"release '{ref}' not found: no releases are registered (sluice release register DIR)")
    labels = sorted({r.name for r in records} | {f"{r.name}@{r.version}" for r in records})
    close = difflib.get_close_matches(ref, labels, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known: {', '.join(labels[:6])}"
    return NotFoundError(f"release '{ref}' not found{hint}")

