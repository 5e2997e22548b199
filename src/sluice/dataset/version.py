"""Dataset versions: a version is the content digest of the normalised rows, in file order.

Order is part of the content on purpose: reports, row numbers and exports follow import order, and
a gate reader who is told "row 17" must find the same row in every copy of that version. Shuffling
a file therefore makes a new version (with the same rows); re-importing identical content never does.

References: ``name`` (newest version), ``name@<digest or unique prefix>``.
"""

from __future__ import annotations

import difflib
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sluice.dataset.io import read_rows, write_rows
from sluice.dataset.row import Row
from sluice.dataset.validate import normalise_row
from sluice.digest import PREFIX, digest_of, short
from sluice.errors import ConfigError, DataError, Location, NotFoundError
from sluice.release.model import NAME_RE
from sluice.store.base import Store
from sluice.store.records import DatasetRecord


def dataset_version(rows: list[Row]) -> str:
    return version_of_dicts([normalise_row(r) for r in rows])


def version_of_dicts(rows: list[dict[str, Any]]) -> str:
    return digest_of(rows)


def parse_ref(ref: str) -> tuple[str, str | None]:
    """``name@version`` -> (name, version); ``name`` -> (name, None)."""
    name, sep, version = ref.strip().partition("@")
    if not name or not NAME_RE.match(name):
        raise ConfigError(f"'{ref}' is not a dataset reference: use NAME or NAME@VERSION "
                          "(letters, digits, '.', '_' or '-')")
    if sep and not version:
        raise ConfigError(f"'{ref}' has an empty version after '@'")
    return name, (version or None)


def import_dataset(store: Store, name: str, path: str | Path, description: str = "",
                   fmt: str | None = None) -> tuple[DatasetRecord, bool]:
    """Validate the whole file, then store it as one version; ``created`` is False if it existed."""
    parse_ref(name)  # the name alone must be valid
    if "@" in name:
        raise ConfigError(f"give the dataset name without a version: '{name.partition('@')[0]}'")
    rows = read_rows(path, fmt)
    bodies = [normalise_row(r) for r in rows]
    version = version_of_dicts(bodies)
    existing = store.get_dataset(name, version)
    if existing is not None:
        return existing, False
    record = DatasetRecord(name=name, version=version, row_count=len(rows),
                           cohorts=dict(sorted(Counter(r.cohort for r in rows).items())),
                           created_at=time.time(), description=description, source=str(path))
    created = store.put_dataset(record, bodies)
    return (record if created else store.get_dataset(name, version) or record), created


def resolve_dataset(store: Store, ref: str) -> DatasetRecord:
    """The dataset version a reference names; NotFoundError with close names, ConfigError if ambiguous."""
    name, version = parse_ref(ref)
    versions = store.list_datasets(name)
    if not versions:
        raise _unknown_name(store, name)
    if version is None:
        return max(versions, key=lambda r: r.created_at)
    wanted = version.removeprefix(PREFIX).lower()
    matches = [r for r in versions if r.version.removeprefix(PREFIX).startswith(wanted)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        known = ", ".join(short(r.version) for r in versions[:5])
        raise NotFoundError(f"dataset '{name}' has no version '{version}' (versions: {known})")
    raise ConfigError(f"version '{version}' of dataset '{name}' is ambiguous: "
                      f"{', '.join(short(r.version) for r in matches[:5])} all match")


def load_rows(store: Store, name: str, version: str | None = None) -> tuple[DatasetRecord, list[Row]]:
    """A stored dataset version and its rows, checked against its digest."""
    record = resolve_dataset(store, f"{name}@{version}" if version else name)
    bodies = store.get_dataset_rows(record.version)
    if version_of_dicts(bodies) != record.version:
        raise DataError(f"stored rows of {record.name}@{short(record.version)} do not match its version digest")
    rows: list[Row] = []
    for number, body in enumerate(bodies, start=1):
        try:
            rows.append(Row.model_validate(body))
        except ValidationError as e:
            raise DataError(f"stored row no longer fits the row schema: {e.errors()[0]['msg']}",
                            Location(file=f"{record.name}@{short(record.version)}", row=number)) from None
    return record, rows


def export_dataset(store: Store, ref: str, path: str | Path, fmt: str | None = None) -> DatasetRecord:
    """Write a stored version to a file; importing that file again yields the same version."""
    record = resolve_dataset(store, ref)
    _, rows = load_rows(store, record.name, record.version)
    write_rows(rows, path, fmt)
    return record


def _unknown_name(store: Store, name: str) -> NotFoundError:
    names = sorted({r.name for r in store.list_datasets()})
    if not names:
        return NotFoundError(f"dataset '{name}' not found: none imported yet (sluice dataset import NAME FILE)")
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(names[:6])}"
    return NotFoundError(f"dataset '{name}' not found; {hint}")
