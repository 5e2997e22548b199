"""A self-contained HTML report: inline CSS and SVG, no scripts, no CDN; every piece of user
text goes through ``html.escape``, so an output containing ``<script>`` stays text."""

from __future__ import annotations

import json
from html import escape

from sluice.gate.measures import ALL, RowDiff
from sluice.gate.report.svg import latency_chart, pass_rate_chart
from sluice.gate.report.table import interval, ms, pvalue, rate, side_line, signed, table_rows
from sluice.gate.result import GateResult

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#1d2330;max-width:1200px}
h1{font-size:22px;margin:0 0 4px}.sub{color:#667}.banner{padding:14px 18px;border-radius:8px;margin:12px 0 18px}
.pass{background:#e5f6ea;border:1px solid #3a9b56}.fail{background:#fde8e8;border:1px solid #c83b3b}
.inconclusive{background:#fff6dc;border:1px solid #c9a227}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}th,td{padding:4px 8px;border-bottom:1px solid #e3e6ec;
text-align:right;vertical-align:top}th{background:#f4f6fa}td.l,th.l{text-align:left}
.s-pass{color:#2f8a47}.s-fail{color:#c83b3b;font-weight:600}.s-inconclusive{color:#a07a00}.s-error{color:#9b2fae}
.s-skipped{color:#888}svg{margin:6px 12px 18px 0}svg .t{font:600 13px sans-serif}svg .a{font:11px sans-serif;fill:#445}
svg .grid{stroke:#e3e6ec}svg .w{stroke:#111;stroke-width:1.2}.row{border:1px solid #e3e6ec;border-radius:6px;
padding:10px 14px;margin:10px 0}.row pre{white-space:pre-wrap;background:#f7f8fb;padding:6px 8px;margin:4px 0;
border-radius:4px}.cols{display:grid;grid-template-columns:1fr 1fr;gap:12px}ul.r li{margin:2px 0}
"""


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def _eval_table(result: GateResult) -> str:
    pct = f"{result.confidence * 100:g}% CI"
    head = "".join(f"<th{' class=l' if h in ('evaluator', 'cohort', 'status') else ''}>{_e(h)}</th>" for h in (
        "evaluator", "cohort", "judged rows", "baseline", "candidate", "Δ pass", pct, "regressed/improved", "McNemar p",
        "Δ score", f"score {pct}", "status"))
    body = []
    for r in table_rows(result):
        m = r.measure
        title = _e(" | ".join(c.message for c in r.checks))
        body.append(
            f"<tr><td class=l>{_e(m.evaluator)}</td><td class=l>{_e(r.cohort_label)}</td><td>{m.n_paired}</td>"
            f"<td>{rate(m.pass_rate_baseline)}</td><td>{rate(m.pass_rate_candidate)}</td><td>{signed(m.pass_delta)}</td>"
            f"<td>{interval(m.pass_delta_ci)}</td><td>{m.baseline_only}/{m.candidate_only}</td>"
            f"<td>{pvalue(m.mcnemar_p)}</td><td>{signed(m.score_delta, False)}</td>"
            f"<td>{interval(m.score_delta_ci, False)}</td>"
            f"<td class='l s-{_e(r.status)}' title=\"{title}\">{_e(r.status)}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _latency_table(result: GateResult) -> str:
    rows = []
    for lat in result.latency:
        cost = result.cost_for(lat.cohort)
        cells = "".join(f"<td>{ms(side.get(k))}</td>" for k in ("p50", "p95", "p99")
                        for side in (lat.baseline_ms, lat.candidate_ms))
        ratio = lat.ratio.get("p95")
        ratio_ci = lat.ratio_ci.get("p95")
        ratio_text = "–" if ratio is None else f"{ratio:.2f}" + (f" ({ratio_ci.low:.2f}…{ratio_ci.high:.2f})"
                                                                  if ratio_ci else "")
        fmt = (lambda x: "–" if x is None else f"{x:.5f}")
        rows.append(f"<tr><td class=l>{_e('all rows' if lat.cohort == ALL else lat.cohort)}</td>{cells}"
                    f"<td>{ratio_text}</td><td>{fmt(cost.cost_baseline if cost else None)}</td>"
                    f"<td>{fmt(cost.cost_candidate if cost else None)}</td></tr>")
    head = "".join(f"<th>{h}</th>" for h in ("p50 base", "p50 cand", "p95 base", "p95 cand", "p99 base", "p99 cand",
                                             "p95 ratio", "cost/row base", "cost/row cand"))
    return f"<table><tr><th class=l>cohort</th>{head}</tr>{''.join(rows)}</table>"


def _row_diff(d: RowDiff) -> str:
    inp = d.input if isinstance(d.input, str) else json.dumps(d.input, ensure_ascii=False, indent=1)
    scores = "".join(
        f"<tr><td class=l>{_e(n)}</td><td>{_score(d.baseline.get(n))}</td><td>{_score(d.candidate.get(n))}</td>"
        f"<td class=l>{_e(d.candidate[n].reason if n in d.candidate else '')}</td></tr>" for n in d.baseline)
    base = d.baseline_output if d.baseline_error is None else f"error: {d.baseline_error}"
    cand = d.candidate_output if d.candidate_error is None else f"error: {d.candidate_error}"
    expected = f"<div><b>expected</b><pre>{_e(d.expected)}</pre></div>" if d.expected is not None else ""
    return (f"<div class=row><b>{_e(d.row_id)}</b> <span class=sub>cohort {_e(d.cohort)} · regressed: "
            f"{_e(', '.join(d.regressed))}</span><div><b>input</b><pre>{_e(inp)}</pre></div>{expected}"
            f"<div class=cols><div><b>baseline</b><pre>{_e(base)}</pre></div><div><b>candidate</b>"
            f"<pre>{_e(cand)}</pre></div></div><table><tr><th class=l>evaluator</th><th>baseline</th>"
            f"<th>candidate</th><th class=l>candidate's reason</th></tr>{scores}</table></div>")


def _score(s: object) -> str:
    if s is None or getattr(s, "score", None) is None:
        return "–"
    return f"{s.score:.2f} {'pass' if s.passed else 'fail'}"  # type: ignore[attr-defined]


def to_html(result: GateResult) -> str:
    charts = "".join(pass_rate_chart(name, [m for m in result.eval if m.evaluator == name])
                     for name in result.evaluators)
    lat = result.latency_for(ALL)
    reasons = "".join(f"<li>{_e(r)}</li>" for r in result.reasons)
    warnings = "".join(f"<li>{_e(w)}</li>" for w in result.warnings)
    rows = "".join(_row_diff(d) for d in result.regressed_rows)
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>sluice gate: {_e(result.verdict)}</title><style>{CSS}</style></head><body>"
        f"<h1>sluice gate</h1><div class=sub>{_e(side_line(result))}</div>"
        f"<div class='banner {_e(result.verdict)}'><b>{_e(result.verdict.upper())}</b> (exit {result.exit_code})"
        f"{'<ul class=r>' + reasons + '</ul>' if reasons else ''}</div>"
        f"<h2>Evaluators by cohort</h2>{_eval_table(result)}<div>{charts}</div>"
        f"<h2>Latency and cost</h2>{_latency_table(result)}{latency_chart(lat) if lat else ''}"
        + (f"<h2>Warnings</h2><ul>{warnings}</ul>" if warnings else "")
        + f"<h2>Regressed rows ({len(result.regressed_rows)} of {result.regressed_row_count})</h2>{rows}"
        f"<p class=sub>policy {_e(result.policy_digest)} · schema {_e(result.schema_)}</p></body></html>\n")
