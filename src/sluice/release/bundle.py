"""A loaded release: the validated model, its normalised manifest, the bytes of every file it
references, and the digest over both.

A bundle is self-sufficient: the runner renders templates from ``files``, never from the folder it
came from, so a release rebuilt from the store behaves exactly like the one on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sluice.errors import ConfigError, DataError
from sluice.release.digest import file_digests, release_digest
from sluice.release.model import Component, Release
from sluice.release.references import file_refs, normalise_path, set_at


@dataclass(frozen=True)
class ReleaseBundle:
    release: Release
    manifest: dict[str, Any]  # normalised: defaults filled, unset fields left out, paths normalised
    files: dict[str, bytes]  # bundle-relative path -> content
    digest: str
    root: Path | None = None  # folder it was loaded from; None when rebuilt from the store
    source: str | None = None  # release.yaml path, or where the stored release was registered from
    file_digests: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        return self.release.ref

    def text(self, rel: str) -> str:
        """A bundle file as text (templates, system prompts, schemas are UTF-8 by load-time check)."""
        try:
            return self.files[rel].decode("utf-8")
        except KeyError:
            raise ConfigError(f"release {self.ref} has no file '{rel}'") from None

    def component(self, name: str) -> Component:
        try:
            return self.release.components[name]
        except KeyError:
            known = ", ".join(self.release.components) or "none"
            raise ConfigError(f"release {self.ref} has no component '{name}' (components: {known})") from None

    def system_prompt(self, name: str) -> str | None:
        comp = self.component(name)
        if comp.system_prompt_file is not None:
            return self.text(comp.system_prompt_file).rstrip("\n")  # the editor's final newline is not prompt
        return comp.system_prompt


def normalised_manifest(release: Release) -> dict[str, Any]:
    """The canonical manifest: what the digest covers and what the store keeps.

    Unset (null) fields are left out so that a new optional field in a later Sluice does not change
    the digest of every existing release.
    """
    manifest = release.model_dump(mode="json", by_alias=True, exclude_none=True)
    for ref in file_refs(release):
        set_at(manifest, ref.path, normalise_path(ref.value))
    return manifest


def make_bundle(release: Release, files: dict[str, bytes], *, root: Path | None = None,
                source: str | None = None) -> ReleaseBundle:
    """Assemble a bundle whose file paths in the model are already normalised."""
    manifest = normalised_manifest(release)
    normalised = Release.model_validate(manifest)  # model paths == file keys from here on
    return ReleaseBundle(release=normalised, manifest=manifest, files=dict(sorted(files.items())),
                         digest=release_digest(manifest, files), root=root, source=source,
                         file_digests=file_digests(files))


def bundle_from_stored(manifest: dict[str, Any], digests: dict[str, str], blobs: dict[str, bytes],
                       *, expected_digest: str, source: str | None = None) -> ReleaseBundle:
    """Rebuild a bundle from a stored manifest and file bodies, checking nothing was lost or altered."""
    missing = [p for p, d in digests.items() if d not in blobs]
    if missing:
        raise DataError(f"stored release {expected_digest} lacks the body of {', '.join(sorted(missing))}")
    files = {p: blobs[d] for p, d in digests.items()}
    try:
        release = Release.model_validate(manifest)
    except ValueError as e:
        raise DataError(f"stored release {expected_digest} no longer fits the release model: "
                        f"{str(e).splitlines()[0]}") from None
    # the stored manifest is authoritative: a later model's new defaults must not break old digests
    digest = release_digest(manifest, files)
    if digest != expected_digest:
        raise DataError(f"stored release {expected_digest} does not match its content (recomputed {digest})")
    return ReleaseBundle(release=release, manifest=manifest, files=dict(sorted(files.items())), digest=digest,
                         source=source, file_digests=file_digests(files))
