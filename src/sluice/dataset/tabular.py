"""The flat column layout shared by CSV and Parquet, and its conversion to and from rows.

Columns: id, input, context, expected_answer, expected_tool, policy_labels, cohort, trace_id,
metadata. Structured cells are JSON; a few plain-text shorthands keep spreadsheets friendly:

* input: JSON (a message list or an object of template variables) or plain text, which becomes one
  user message;
* context: a JSON list (of strings or documents) or plain text, which becomes one document;
* expected_tool: a JSON object ``{"name": ..., "arguments": {...}}`` or a bare tool name;
* policy_labels: a JSON list or ``a;b;c``.

Text is read as JSON only when it *looks* like JSON (starts with ``{``, ``[{``, ``["`` or ``[]``);
then it must parse, so a broken JSON cell is an error rather than a silently odd question.
Columns not in the layout go into ``metadata``. Parquet cells may also be native lists/structs.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sluice.dataset.row import Row
from sluice.dataset.validate import ProblemLog, Record, Rejected, normalise_row

COLUMNS = ("id", "input", "context", "expected_answer", "expected_tool", "policy_labels", "cohort",
           "trace_id", "metadata")
REQUIRED_COLUMNS = ("id", "input")
JSON_LIKE = re.compile(r"^\s*(\{|\[\s*[\{\"\]])")
TEXT_FIELDS = ("id", "expected_answer", "cohort", "trace_id")


def cells_to_raw(cells: dict[str, Any], number: int, log: ProblemLog) -> Record:
    """One record of cells -> a raw row dict for validation, or Rejected (problems logged)."""
    raw: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    ok = True
    for column, value in cells.items():
        if value is None or value == "":
            continue
        if column not in COLUMNS:
            extra[column] = value
            continue
        try:
            raw[column] = _cell(column, value)
        except ValueError as e:
            log.add(number, column, str(e))
            ok = False
    if extra:
        metadata = raw.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            return raw if ok else Rejected(raw.get("id"))  # the row validator reports the bad metadata
        for key, value in extra.items():
            if key in metadata:
                log.add(number, f"metadata.{key}", "given both as a column and inside the metadata JSON")
                ok = False
            metadata[key] = value
    return raw if ok else Rejected(raw.get("id"))


def _cell(column: str, value: Any) -> Any:
    if column in TEXT_FIELDS:
        return value if isinstance(value, str) else str(value)
    if not isinstance(value, str):
        return _drop_struct_nulls(value) if column in ("input", "context", "expected_tool") else value
    if column == "input":
        return _json(value) if JSON_LIKE.match(value) else [{"role": "user", "content": value}]
    if column == "context":
        return _json(value) if JSON_LIKE.match(value) else [value]
    if column == "expected_tool":
        return _json(value) if JSON_LIKE.match(value) else {"name": value.strip()}
    if column == "policy_labels":
        if JSON_LIKE.match(value):
            return _json(value)
        return [label.strip() for label in value.split(";") if label.strip()]
    return _json(value)  # metadata


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"not valid JSON: {e.msg} at character {e.pos + 1}") from None


def _drop_struct_nulls(value: Any) -> Any:
    """Parquet structs carry every struct field, null where a record lacked it: drop those."""
    if isinstance(value, dict):
        return {k: _drop_struct_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_struct_nulls(v) for v in value]
    return value


def row_to_cells(row: Row, *, labels_as_list: bool = False) -> dict[str, Any]:
    """A row as cells that ``cells_to_raw`` reads back to the same normalised row.

    ``labels_as_list`` keeps policy_labels a list (a Parquet VARCHAR[] column) instead of text.
    """
    data = normalise_row(row)
    return {
        "id": data["id"],
        "input": _input_cell(data["input"]),
        "context": _dumps([_doc_cell(d) for d in data["context"]]) if data["context"] else None,
        "expected_answer": data.get("expected_answer"),
        "expected_tool": _dumps(data["expected_tool"]) if "expected_tool" in data else None,
        "policy_labels": data["policy_labels"] if labels_as_list else _labels_cell(data["policy_labels"]),
        "cohort": data["cohort"],
        "trace_id": data.get("trace_id"),
        "metadata": _dumps(data["metadata"]) if data["metadata"] else None,
    }


def _input_cell(value: Any) -> str:
    """Plain text for a lone user message (what a spreadsheet author would type), JSON otherwise."""
    if (isinstance(value, list) and len(value) == 1 and set(value[0]) == {"role", "content"}
            and value[0]["role"] == "user" and isinstance(value[0]["content"], str)
            and value[0]["content"] and not JSON_LIKE.match(value[0]["content"])):
        return value[0]["content"]
    return _dumps(value)


def _doc_cell(doc: dict[str, Any]) -> Any:
    return doc["text"] if set(doc) <= {"text", "metadata"} and not doc.get("metadata") else doc


def _labels_cell(labels: list[str]) -> str | None:
    if not labels:
        return None
    if all(label and label == label.strip() and ";" not in label for label in labels) and not JSON_LIKE.match(labels[0]):
        return ";".join(labels)
    return _dumps(labels)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
