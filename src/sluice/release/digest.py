"""The release digest: one ``sha256:`` over everything that changes behaviour.

It hashes the *normalised* manifest (validated model with defaults filled, unset fields left out,
file paths normalised, canonical JSON) together with the content digest of every referenced file.
So reformatting release.yaml or reordering its keys changes nothing, while any model, base URL,
sampling parameter, template byte, schema, guardrail threshold or fallback change yields a new
digest. Secrets cannot enter it: the manifest holds environment-variable names only, never values.
"""

from __future__ import annotations

from typing import Any

from sluice.digest import digest_of, sha256_bytes


def file_digests(files: dict[str, bytes]) -> dict[str, str]:
    """Bundle-relative path -> content digest."""
    return {path: sha256_bytes(body) for path, body in sorted(files.items())}


def release_digest(manifest: dict[str, Any], files: dict[str, bytes]) -> str:
    return digest_from_file_digests(manifest, file_digests(files))


def digest_from_file_digests(manifest: dict[str, Any], digests: dict[str, str]) -> str:
    """Same digest from already-hashed files (a stored record carries only their digests)."""
    return digest_of({"manifest": manifest, "files": digests})
