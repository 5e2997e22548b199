"""Read and write dataset files: JSONL (and a JSON array), CSV, Parquet.

Reading validates every record before returning anything (``RowErrors`` lists bad rows by number
and field); writing goes through a temporary file and a rename, so an interrupted export never
leaves half a file. Row numbers: JSONL counts lines (blank lines included), a JSON array counts
elements, CSV counts data records after the header, Parquet counts records; all from 1.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from sluice.dataset.row import Row
from sluice.dataset.tabular import COLUMNS, REQUIRED_COLUMNS, cells_to_raw, row_to_cells
from sluice.dataset.validate import ProblemLog, Record, Rejected, normalise_row, validate_rows
from sluice.errors import DataError, Location

FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}


def format_of(path: str | Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in set(FORMATS.values()):
            raise DataError(f"unknown format '{fmt}': use {', '.join(sorted(set(FORMATS.values())))}")
        return fmt
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise DataError(f"cannot tell the format from '{suffix or 'no extension'}': use .jsonl, .json, .csv or "
                        ".parquet, or pass the format", Location(file=str(path)))
    return FORMATS[suffix]


def read_rows(path: str | Path, fmt: str | None = None, *, max_problems: int = 100) -> list[Row]:
    """Every row of the file, validated; DataError (``RowErrors`` for row problems) otherwise."""
    kind = format_of(path, fmt)
    file = str(path)
    if not Path(path).is_file():
        raise DataError("file not found", Location(file=file))
    log = ProblemLog(file, max_problems)
    records = {"jsonl": _jsonl_records, "json": _json_records, "csv": _csv_records,
               "parquet": _parquet_records}[kind](Path(path), log)
    return validate_rows(records, log)


def write_rows(rows: list[Row], path: str | Path, fmt: str | None = None) -> None:
    kind = format_of(path, fmt)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        {"jsonl": _write_jsonl, "json": _write_json, "csv": _write_csv, "parquet": _write_parquet}[kind](rows, Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# JSON -----------------------------------------------------------------------------------------
def _jsonl_records(path: Path, log: ProblemLog) -> Iterator[tuple[int, Record]]:
    for number, raw_line in enumerate(path.read_bytes().split(b"\n"), start=1):
        if not raw_line.strip():
            continue
        try:
            line = raw_line.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError as e:
            log.add(number, None, f"not valid UTF-8 (byte {e.start + 1} of the line)")
            yield number, Rejected()
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as e:
            log.add(number, None, f"not valid JSON: {e.msg} at column {e.colno}")
            yield number, Rejected()
            continue
        yield number, _object(value, number, log)


def _json_records(path: Path, log: ProblemLog) -> Iterator[tuple[int, Record]]:
    try:
        value = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise DataError(f"not valid UTF-8 (byte {e.start + 1})", Location(file=str(path))) from None
    except json.JSONDecodeError as e:
        raise DataError(f"not valid JSON: {e.msg}", Location(file=str(path), line=e.lineno)) from None
    if not isinstance(value, list):
        raise DataError("a .json dataset must be an array of row objects", Location(file=str(path)))
    for number, item in enumerate(value, start=1):
        yield number, _object(item, number, log)


def _object(value: Any, number: int, log: ProblemLog) -> Record:
    if isinstance(value, dict):
        return value
    log.add(number, None, f"a row must be a JSON object, not {type(value).__name__}")
    return Rejected()


def _write_jsonl(rows: list[Row], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(normalise_row(row), ensure_ascii=False) + "\n")


def _write_json(rows: list[Row], path: Path) -> None:
    path.write_text(json.dumps([normalise_row(r) for r in rows], ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


# CSV ------------------------------------------------------------------------------------------
def _csv_records(path: Path, log: ProblemLog) -> Iterator[tuple[int, Record]]:
    # surrogateescape keeps undecodable bytes visible per cell, so the error names row and column
    text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        if header is None:
            return
        header = [h.strip() for h in header]
        _check_header(header, path)
        for number, cells in enumerate(reader, start=1):
            if not any(c.strip() for c in cells):
                continue
            if len(cells) > len(header):
                log.add(number, None, f"{len(cells)} cells but only {len(header)} columns")
                yield number, Rejected()
                continue
            record = dict(zip(header, cells))
            bad = [col for col, v in record.items() if _has_surrogates(v)]
            for col in bad:
                log.add(number, col, "not valid UTF-8")
            yield number, Rejected(record.get("id")) if bad else cells_to_raw(record, number, log)
    except csv.Error as e:
        raise DataError(f"malformed CSV: {e}", Location(file=str(path), line=reader.line_num)) from None


def _check_header(header: list[str], path: Path) -> None:
    bad = next((h for h in header if _has_surrogates(h)), None)
    if bad is not None:
        raise DataError("header is not valid UTF-8", Location(file=str(path), line=1))
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(f"missing column '{missing[0]}' (columns: {', '.join(COLUMNS)})", Location(file=str(path), line=1))
    dup = next((h for h in header if header.count(h) > 1), None)
    if dup is not None:
        raise DataError(f"column '{dup}' appears twice", Location(file=str(path), line=1))


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if v is None else v) for k, v in row_to_cells(row).items()})


# Parquet (through DuckDB: no pyarrow) -----------------------------------------------------------
def _parquet_records(path: Path, log: ProblemLog) -> Iterator[tuple[int, Record]]:
    import duckdb

    try:
        with duckdb.connect() as con:
            result = con.execute("SELECT * FROM read_parquet(?)", [str(path)])
            names = [d[0] for d in result.description]
            records = result.fetchall()
    except duckdb.Error as e:
        raise DataError(f"cannot read Parquet: {str(e).splitlines()[0]}", Location(file=str(path))) from None
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing and records:
        raise DataError(f"missing column '{missing[0]}'", Location(file=str(path)))
    for number, values in enumerate(records, start=1):
        yield number, cells_to_raw(dict(zip(names, values)), number, log)


def _write_parquet(rows: list[Row], path: Path) -> None:
    import duckdb

    columns = ", ".join(f"{c} {'VARCHAR[]' if c == 'policy_labels' else 'VARCHAR'}" for c in COLUMNS)
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE dataset_rows ({columns})")
        cells = [row_to_cells(r, labels_as_list=True) for r in rows]
        con.executemany(f"INSERT INTO dataset_rows VALUES ({', '.join('?' for _ in COLUMNS)})",
                        [[c[k] for k in COLUMNS] for c in cells])
        quoted = str(path).replace("'", "''")
        con.execute(f"COPY dataset_rows TO '{quoted}' (FORMAT parquet)")
