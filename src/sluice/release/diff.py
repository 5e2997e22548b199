"""What changed between two releases: every manifest field and every file, by name.

A gate verdict is only useful if the reader knows what the candidate changed; sampling-parameter
changes in particular move scores without touching a prompt, so they are flagged for the gate
report. Lists of named things (tools, guardrails) are matched by name, so inserting a tool does not
show every later tool as changed.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Literal

from sluice.digest import short
from sluice.release.bundle import ReleaseBundle

SAMPLING_PATH = re.compile(r"^components\.[^.\[]+\.params(\.|$)")
MAX_DIFF_LINES = 40
FILE_PREFIX = "file:"


@dataclass(frozen=True)
class Change:
    path: str  # dotted field path (``components.responder.params.temperature``) or ``file:<path>``
    before: Any  # None when added; for files the short content digest
    after: Any  # None when removed
    kind: Literal["added", "removed", "changed"]
    text_diff: str | None = None  # unified diff of a changed text file, cut to MAX_DIFF_LINES

    @property
    def is_file(self) -> bool:
        return self.path.startswith(FILE_PREFIX)

    @property
    def is_sampling(self) -> bool:
        """A sampling parameter (temperature, top_p, max_tokens, stop, seed, ...) changed."""
        return bool(SAMPLING_PATH.match(self.path))

    def summary(self) -> str:
        if self.kind == "added":
            return f"+ {self.path}: {_show(self.after)}"
        if self.kind == "removed":
            return f"- {self.path}: {_show(self.before)}"
        return f"~ {self.path}: {_show(self.before)} -> {_show(self.after)}"


def diff_releases(a: ReleaseBundle, b: ReleaseBundle) -> list[Change]:
    """Changes from ``a`` (baseline) to ``b`` (candidate): fields first, then files, each sorted."""
    changes = _diff_values(a.manifest, b.manifest, "")
    return changes + _diff_files(a, b)


def sampling_changes(changes: list[Change]) -> list[Change]:
    return [c for c in changes if c.is_sampling]


def format_changes(changes: list[Change], *, with_text: bool = True) -> str:
    """Plain text for the terminal and reports; empty string when nothing changed."""
    out: list[str] = []
    for c in changes:
        out.append(c.summary() + ("   [sampling]" if c.is_sampling else ""))
        if with_text and c.text_diff:
            out.extend("    " + line for line in c.text_diff.splitlines())
    return "\n".join(out)


def _diff_values(before: Any, after: Any, path: str) -> list[Change]:
    if before == after:
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[Change] = []
        for key in sorted(set(before) | set(after)):
            sub = f"{path}.{key}" if path else str(key)
            if key not in before:
                out.append(Change(sub, None, after[key], "added"))
            elif key not in after:
                out.append(Change(sub, before[key], None, "removed"))
            else:
                out.extend(_diff_values(before[key], after[key], sub))
        return out
    if isinstance(before, list) and isinstance(after, list):
        keyed_a, keyed_b = _by_name(before), _by_name(after)
        if keyed_a is not None and keyed_b is not None:
            return _diff_keyed(keyed_a, keyed_b, path)
        if all(isinstance(x, dict) for x in before + after) and len(before) == len(after):
            return [c for i, (x, y) in enumerate(zip(before, after)) for c in _diff_values(x, y, f"{path}[{i}]")]
    return [Change(path, before, after, "changed")]


def _by_name(items: list[Any]) -> dict[str, Any] | None:
    """Items keyed by their ``name`` when every item is a mapping with a unique name."""
    if not items or not all(isinstance(x, dict) and isinstance(x.get("name"), str) for x in items):
        return None
    keyed = {x["name"]: x for x in items}
    return keyed if len(keyed) == len(items) else None


def _diff_keyed(a: dict[str, Any], b: dict[str, Any], path: str) -> list[Change]:
    out: list[Change] = []
    for name in list(a) + [n for n in b if n not in a]:
        sub = f"{path}[{name}]"
        if name not in b:
            out.append(Change(sub, a[name], None, "removed"))
        elif name not in a:
            out.append(Change(sub, None, b[name], "added"))
        else:
            out.extend(_diff_values(a[name], b[name], sub))
    if [n for n in a if n in b] != [n for n in b if n in a]:
        out.append(Change(f"{path}.order", [n for n in a], [n for n in b], "changed"))
    return out


def _diff_files(a: ReleaseBundle, b: ReleaseBundle) -> list[Change]:
    out: list[Change] = []
    da, db = a.file_digests, b.file_digests
    for rel in sorted(set(da) | set(db)):
        path = FILE_PREFIX + rel
        if rel not in da:
            out.append(Change(path, None, short(db[rel]), "added"))
        elif rel not in db:
            out.append(Change(path, short(da[rel]), None, "removed"))
        elif da[rel] != db[rel]:
            out.append(Change(path, short(da[rel]), short(db[rel]), "changed", _text_diff(rel, a.files[rel], b.files[rel])))
    return out


def _text_diff(rel: str, before: bytes, after: bytes) -> str | None:
    try:
        old, new = before.decode("utf-8"), after.decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = list(difflib.unified_diff(old.splitlines(), new.splitlines(), f"a/{rel}", f"b/{rel}", n=1, lineterm=""))
    if len(lines) > MAX_DIFF_LINES:
        lines = lines[:MAX_DIFF_LINES] + [f"... ({len(lines) - MAX_DIFF_LINES} more diff lines)"]
    return "\n".join(lines)


def _show(value: Any) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."
