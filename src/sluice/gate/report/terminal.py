"""The terminal report: a verdict banner, the evaluator x cohort table, latency, reasons."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from sluice.gate.measures import ALL
from sluice.gate.report.table import ICON, interval, ms, pvalue, rate, side_line, signed, table_rows
from sluice.gate.result import GateResult

MAX_REASONS = 12  # the full list is in every file report
COLOUR = {"pass": "green", "fail": "red", "inconclusive": "yellow", "skipped": "dim", "error": "magenta", "-": "dim"}


def banner(result: GateResult) -> Panel:
    """The verdict; on exit 5 also the cause (a target that failed), which outranks every table below."""
    colour = COLOUR[result.verdict]
    title = Text(f"{result.verdict.upper()}  (exit {result.exit_code})", style=f"bold {colour}")
    causes = [Text(c.message, style="bold magenta") for c in result.checks if c.status == "error"]
    return Panel(Group(title, *causes, Text(side_line(result), style="dim")), border_style=colour, title="sluice gate")


def eval_table(result: GateResult) -> Table:
    pct = f"{result.confidence * 100:g}% CI"
    t = Table(title="Evaluators by cohort (candidate − baseline, paired)", header_style="bold")
    for col, justify in (("evaluator", "left"), ("cohort", "left"), ("judged rows", "right"), ("pass base→cand", "right"),
                         (f"Δ pass ({pct})", "right"), ("↓/↑", "right"), ("p", "right"),
                         (f"Δ score ({pct})", "right"), ("", "left")):
        t.add_column(col, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in table_rows(result):
        m = r.measure
        t.add_row(m.evaluator, r.cohort_label, str(m.n_paired),
                  f"{rate(m.pass_rate_baseline)}→{rate(m.pass_rate_candidate)}",
                  f"{signed(m.pass_delta)} {interval(m.pass_delta_ci)}", f"{m.baseline_only}/{m.candidate_only}",
                  pvalue(m.mcnemar_p), f"{signed(m.score_delta, pct=False)} {interval(m.score_delta_ci, pct=False)}",
                  Text(f"{ICON[r.status]} {r.status}", style=COLOUR[r.status]))
    return t


def latency_table(result: GateResult) -> Table:
    t = Table(title="Latency and cost per row", header_style="bold")
    for col in ("cohort", "p50 base", "p50 cand", "p95 base", "p95 cand", "p99 base", "p99 cand", "cost base",
                "cost cand"):
        t.add_column(col, justify="left" if col == "cohort" else "right")
    for lat in result.latency:
        cost = result.cost_for(lat.cohort)
        fmt = (lambda x: "–" if x is None else f"${x:.3g}")
        t.add_row("all rows" if lat.cohort == ALL else lat.cohort,
                  *(ms(side.get(k)) for k in ("p50", "p95", "p99") for side in (lat.baseline_ms, lat.candidate_ms)),
                  fmt(cost.cost_baseline if cost else None), fmt(cost.cost_candidate if cost else None))
    return t


def render_terminal(result: GateResult, console: Console | None = None) -> None:
    console = console or Console()
    console.print(banner(result))
    console.print(eval_table(result))
    console.print(latency_table(result))
    if result.reasons:
        console.print(Text("Why", style="bold"))
        for reason in result.reasons[:MAX_REASONS]:
            console.print(Text(f"  • {reason}"))
        if len(result.reasons) > MAX_REASONS:
            console.print(Text(f"  … and {len(result.reasons) - MAX_REASONS} more in the JSON, Markdown or HTML "
                               "report", style="dim"))
    for warning in result.warnings:
        console.print(Text(f"  warning: {warning}", style="yellow"))
    if result.regressed_row_count:
        console.print(Text(f"{result.regressed_row_count} rows regressed; see the HTML or Markdown report "
                           "for per-row diffs.", style="dim"))
