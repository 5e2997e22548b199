"""``sluice dataset import|list|show|export``."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import typer

from sluice.cli import context
from sluice.cli.output import print_json, table, when
from sluice.dataset.version import export_dataset, import_dataset, load_rows, resolve_dataset
from sluice.digest import short
from sluice.errors import ConfigError
from sluice.store.records import DatasetRecord

app = typer.Typer(no_args_is_help=True)


def _info(r) -> dict:
    return {"name": r.name, "version": r.version, "rows": r.row_count, "cohorts": r.cohorts,
            "description": r.description, "source": r.source, "created_at": r.created_at}


@app.command("import")
def import_(
    name: str = typer.Argument(..., help="dataset name"),
    path: str = typer.Argument(..., help="a .jsonl, .json, .csv or .parquet file"),
    fmt: str = typer.Option(None, "--format", help="jsonl, json, csv or parquet (default: from the extension)"),
    description: str = typer.Option("", "--description", "-d"),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Validate every row, then store the file as a new version (nothing is half-imported)."""
    record, created = import_dataset(context.store(), name, path, description=description, fmt=fmt)
    if json:
        print_json(_info(record) | {"created": created})
        return
    state = "imported" if created else "unchanged, already stored as"
    context.console().print(f"{state} [bold]{record.name}@{short(record.version)}[/] "
                            f"({record.row_count} rows, {len(record.cohorts)} cohorts) {record.version}")


@app.command("list")
def list_(
    name: str = typer.Argument(None, help="Only versions of this dataset."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Stored datasets and their versions, newest first."""
    server = context.remote()
    if server is not None:  # through the running server that holds the store
        records = [DatasetRecord(**d) for d in server.call("GET", "/api/datasets", params={"name": name})["datasets"]]
    else:
        records = context.store().list_datasets(name)
    if json:
        print_json([_info(r) for r in records])
        return
    if not records:
        context.console().print("no datasets yet: sluice dataset import NAME FILE")
        return
    table("name", "version", "rows", "cohorts", "imported", rows=[
        [r.name, short(r.version), r.row_count, ", ".join(f"{k} {v}" for k, v in sorted(r.cohorts.items())),
         when(r.created_at)] for r in records])


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    rows: int = typer.Option(5, "--rows", "-n", help="How many rows to print."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A dataset version: its cohorts and first rows."""
    store = context.store()
    record = resolve_dataset(store, ref)
    _, items = load_rows(store, record.name, record.version)
    if json:
        print_json(_info(record) | {"head": [r.model_dump(mode="json", exclude_none=True) for r in items[:rows]]})
        return
    c = context.console()
    c.print(f"[bold]{record.name}@{short(record.version)}[/] {record.version}: {record.row_count} rows")
    table("cohort", "rows", rows=[[k, v] for k, v in sorted(record.cohorts.items())])
    for r in items[:rows]:
        c.print(f"[dim]{r.id}[/] [{r.cohort}] {r.last_user_text()[:100]}")


@app.command("export")
def export(
    ref: str = typer.Argument(..., help="NAME or NAME@VERSION"),
    path: str = typer.Argument(..., help="output file (.jsonl, .json, .csv or .parquet); '-' for standard output"),
    fmt: str = typer.Option(None, "--format", help="jsonl, json, csv or parquet (default: from the extension)"),
) -> None:
    """Write a stored version to a file ('-': standard output, JSONL unless --format says json or
    csv); importing it again gives the same version."""
    if path != "-":
        record = export_dataset(context.store(), ref, path, fmt=fmt)
        context.console().print(f"wrote {record.row_count} rows of {record.name}@{short(record.version)} to {path}")
        return
    kind = (fmt or "jsonl").lower()
    if kind not in ("jsonl", "json", "csv"):
        raise ConfigError(f"--format {kind} cannot go to standard output: use jsonl, json or csv, or give a file")
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / f"export.{kind}"
        record = export_dataset(context.store(), ref, out, fmt=kind)
        sys.stdout.write(out.read_text(encoding="utf-8"))
    context.console_err().print(f"wrote {record.row_count} rows of {record.name}@{short(record.version)} to stdout")
