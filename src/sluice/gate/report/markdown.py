"""Markdown for a pull-request comment: verdict, reasons, the table, the worst regressed rows.

User text (outputs, inputs, cohort names) is HTML-escaped and pipes are escaped, because GitHub
renders inline HTML in comments and a stray ``|`` would break the table.
"""

from __future__ import annotations

import html
import json

from sluice.gate.measures import RowDiff
from sluice.gate.report.table import ICON, interval, ms, pvalue, rate, side_line, signed, table_rows
from sluice.gate.result import GateResult

TOP_ROWS = 10


def esc(text: object) -> str:
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", "<br>")


def _input_text(d: RowDiff) -> str:
    if isinstance(d.input, list):
        users = [m.get("content") or "" for m in d.input if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users else json.dumps(d.input, ensure_ascii=False)
    return json.dumps(d.input, ensure_ascii=False)


def _row_block(d: RowDiff) -> list[str]:
    lines = [f"<details><summary><code>{esc(d.row_id)}</code> ({esc(d.cohort)}): {esc(', '.join(d.regressed))}"
             "</summary>", "", f"**Input:** {esc(_input_text(d))}", ""]
    if d.expected is not None:
        lines += [f"**Expected:** {esc(d.expected)}", ""]
    lines += [f"**Baseline:** {esc(d.baseline_output if d.baseline_error is None else 'error: ' + d.baseline_error)}",
              "", f"**Candidate:** {esc(d.candidate_output if d.candidate_error is None else 'error: ' + d.candidate_error)}",
              "", "| evaluator | baseline | candidate | candidate's reason |", "|---|---|---|---|"]
    for name in d.regressed:
        b, c = d.baseline.get(name), d.candidate.get(name)
        fmt = (lambda s: "–" if s is None or s.score is None else f"{s.score:.2f} {'pass' if s.passed else 'fail'}")
        lines.append(f"| {esc(name)} | {fmt(b)} | {fmt(c)} | {esc(c.reason if c else '')} |")
    return lines + ["", "</details>", ""]


def to_markdown(result: GateResult, top_rows: int = TOP_ROWS) -> str:
    out = [f"## {ICON[result.verdict]} sluice gate: **{result.verdict.upper()}** (exit {result.exit_code})", "",
           esc(side_line(result)), ""]
    if result.reasons:
        out += [f"- {esc(r)}" for r in result.reasons] + [""]
    pct = f"{result.confidence * 100:g}% CI"
    out += [f"| evaluator | cohort | judged rows | baseline | candidate | Δ pass | {pct} | regressed/improved | McNemar p | |",
            "|---|---|--:|--:|--:|--:|--:|--:|--:|---|"]
    for r in table_rows(result):
        m = r.measure
        out.append(f"| {esc(m.evaluator)} | {esc(r.cohort_label)} | {m.n_paired} | {rate(m.pass_rate_baseline)} | "
                   f"{rate(m.pass_rate_candidate)} | {signed(m.pass_delta)} | {interval(m.pass_delta_ci)} | "
                   f"{m.baseline_only}/{m.candidate_only} | {pvalue(m.mcnemar_p)} | {ICON[r.status]} {r.status} |")
    lat = result.latency_for("(all)")
    if lat:
        out += ["", f"**Latency** p50/p95/p99: baseline {ms(lat.baseline_ms.get('p50'))} / {ms(lat.baseline_ms.get('p95'))}"
                f" / {ms(lat.baseline_ms.get('p99'))}, candidate {ms(lat.candidate_ms.get('p50'))} / "
                f"{ms(lat.candidate_ms.get('p95'))} / {ms(lat.candidate_ms.get('p99'))}"]
    if result.warnings:
        out += ["", "**Warnings**", ""] + [f"- {esc(w)}" for w in result.warnings]
    if result.regressed_rows:
        shown = result.regressed_rows[:top_rows]
        out += ["", f"### Top regressed rows ({len(shown)} of {result.regressed_row_count})", ""]
        for d in shown:
            out += _row_block(d)
    out += ["", f"<sub>policy {esc(result.policy_digest[:19])} · schema {result.schema_}</sub>", ""]
    return "\n".join(out)
