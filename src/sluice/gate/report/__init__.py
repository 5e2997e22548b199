"""Renderers of a GateResult: terminal (rich), JSON, JUnit XML, Markdown, HTML."""

from __future__ import annotations

from pathlib import Path

from sluice.gate.report.html import to_html
from sluice.gate.report.json_report import to_json
from sluice.gate.report.junit import to_junit
from sluice.gate.report.markdown import to_markdown
from sluice.gate.report.terminal import render_terminal
from sluice.gate.result import GateResult

__all__ = ["render_terminal", "to_html", "to_json", "to_junit", "to_markdown", "write_reports"]


def write_reports(result: GateResult, *, json: str | Path | None = None, junit: str | Path | None = None,
                  markdown: str | Path | None = None, html: str | Path | None = None) -> list[Path]:
    """Write each requested report file (UTF-8); returns the paths written."""
    written = []
    for path, render in ((json, to_json), (junit, to_junit), (markdown, to_markdown), (html, to_html)):
        if path is not None:
            p = Path(path)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(render(result), encoding="utf-8")
            written.append(p)
    return written
