"""Load a release folder into a checked, content-addressed bundle.

Everything that can be wrong with a release is found here, before it runs: YAML syntax, unknown or
mistyped fields, literal secrets, missing files, templates that do not parse, schemas that are not
schemas. Each problem is one ConfigError naming the file, the line and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sluice.errors import ConfigError, Location
from sluice.release.bundle import ReleaseBundle, make_bundle
from sluice.release.model import Release
from sluice.release.references import FileRef, check_file, file_refs, inline_schemas, normalise_path, schema_problem
from sluice.release.secrets import refuse_secrets
from sluice.yamlio import LineMap, dotted, line_of, load_yaml, validate_model

MANIFEST_NAMES = ("release.yaml", "release.yml")


def find_manifest(path: str | Path) -> Path:
    """``path`` is release.yaml itself or the folder holding it."""
    p = Path(path)
    if p.is_dir():
        for name in MANIFEST_NAMES:
            if (p / name).is_file():
                return p / name
        raise ConfigError(f"no {' or '.join(MANIFEST_NAMES)} in this folder", Location(file=str(p)))
    if not p.exists():
        raise ConfigError("release file not found", Location(file=str(p)))
    return p


def load_release(path: str | Path) -> ReleaseBundle:
    manifest_path = find_manifest(path)
    file = str(manifest_path)
    data, lines = load_yaml(manifest_path)
    if data is not None and not isinstance(data, dict):
        raise ConfigError("a release must be a YAML mapping", Location(file=file, line=1))
    refuse_secrets(data, lines, file)
    release = validate_model(Release, data, lines, file)
    root = manifest_path.parent
    files = _read_files(release, root, lines, file)
    _check_inline_schemas(release, lines, file)
    return make_bundle(release, files, root=root, source=file)


def _read_files(release: Release, root: Path, lines: LineMap, file: str) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for ref in file_refs(release):
        where = Location(file=file, line=line_of(lines, ref.path), field=dotted(ref.path))
        rel = normalise_path(ref.value)
        if rel is None:
            raise ConfigError("use a path relative to the release folder, not an absolute path", where)
        data = _read(root / rel, ref, where)
        check_file(ref, rel, data, str(root / rel), f"{where.field} at {file}:{where.line}")
        files[rel] = data
    return files


def _read(path: Path, ref: FileRef, where: Location) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"file '{ref.value}' not found (looked for {path})", where) from None
    except IsADirectoryError:
        raise ConfigError(f"'{ref.value}' is a folder, not a file", where) from None
    except OSError as e:
        raise ConfigError(f"cannot read '{ref.value}': {e.strerror}", where) from None


def _check_inline_schemas(release: Release, lines: LineMap, file: str) -> None:
    for path, schema in inline_schemas(release):
        problem = schema_problem(schema)
        if problem:
            raise ConfigError(f"not a valid JSON schema: {problem}",
                              Location(file=file, line=line_of(lines, path), field=dotted(path)))


def manifest_json(bundle: ReleaseBundle) -> str:
    """The normalised manifest as indented JSON, for ``release show``."""
    return json.dumps(bundle.manifest, indent=2, sort_keys=True, ensure_ascii=False)


def describe(bundle: ReleaseBundle) -> dict[str, Any]:
    """A short summary for listings and ``--json`` output."""
    rel = bundle.release
    return {
        "name": rel.name,
        "version": rel.version,
        "digest": bundle.digest,
        "target": rel.target.type,
        "components": {n: {"provider": c.provider, "model": c.model} for n, c in rel.components.items()},
        "files": bundle.file_digests,
    }
