"""Small output helpers shared by the command modules: JSON for machines, tables for people."""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from rich.table import Table

from sluice.cli.context import console


def print_json(value: Any) -> None:
    console().out(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode(), highlight=False)


def when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if ts else "-"


def table(*columns: str, rows: list[list[Any]], title: str | None = None) -> None:
    t = Table(*columns, title=title, show_lines=False, header_style="bold")
    for r in rows:
        t.add_row(*[str(c) for c in r])
    console().print(t)
