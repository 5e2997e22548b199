"""Inline SVG charts for the HTML report: no scripts, no external assets, all text escaped."""

from __future__ import annotations

from html import escape

from sluice.gate.measures import EvalMeasure, LatencyMeasure

BASE, CAND = "#8a94a6", "#3b6fd8"


def pass_rate_chart(evaluator: str, measures: list[EvalMeasure]) -> str:
    """Baseline and candidate pass rate per cohort, Wilson intervals as whiskers."""
    bar, gap, left, top, height = 18, 22, 130, 24, 200
    width = left + len(measures) * (2 * bar + gap) + 20
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{top + height + 60}" role="img" '
             f'aria-label="pass rate by cohort for {escape(evaluator)}">',
             f'<text x="4" y="16" class="t">{escape(evaluator)}: pass rate by cohort</text>']
    y = (lambda v: top + height * (1 - v))
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(f'<line x1="{left - 4}" x2="{width - 10}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" class="grid"/>'
                     f'<text x="{left - 8}" y="{y(tick) + 4:.1f}" text-anchor="end" class="a">{tick:.0%}</text>')
    for i, m in enumerate(measures):
        x0 = left + i * (2 * bar + gap)
        for j, (value, ci, colour) in enumerate(((m.pass_rate_baseline, m.pass_rate_baseline_ci, BASE),
                                                 (m.pass_rate_candidate, m.pass_rate_candidate_ci, CAND))):
            if value is None:
                continue
            x = x0 + j * bar
            parts.append(f'<rect x="{x}" y="{y(value):.1f}" width="{bar - 2}" height="{height * value:.1f}" '
                         f'fill="{colour}"><title>{value:.1%}</title></rect>')
            if ci is not None:
                cx = x + (bar - 2) / 2
                parts.append(f'<line x1="{cx}" x2="{cx}" y1="{y(ci.high):.1f}" y2="{y(ci.low):.1f}" class="w"/>'
                             f'<line x1="{cx - 4}" x2="{cx + 4}" y1="{y(ci.high):.1f}" y2="{y(ci.high):.1f}" class="w"/>'
                             f'<line x1="{cx - 4}" x2="{cx + 4}" y1="{y(ci.low):.1f}" y2="{y(ci.low):.1f}" class="w"/>')
        label = "all rows" if m.cohort == "(all)" else m.cohort
        parts.append(f'<text x="{x0 + bar}" y="{top + height + 16}" text-anchor="middle" class="a">'
                     f'{escape(label[:14])}</text>')
    parts.append(_legend(left, top + height + 36))
    return "".join(parts) + "</svg>"


def latency_chart(m: LatencyMeasure) -> str:
    """p50 / p95 / p99 for baseline and candidate, on a shared linear scale."""
    keys = ("p50", "p95", "p99")
    values = [v for side in (m.baseline_ms, m.candidate_ms) for k in keys if (v := side.get(k)) == v and v is not None]
    top_v = max(values, default=1.0) or 1.0
    row, left, width = 22, 60, 520
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{left + width + 90}" height="{len(keys) * 2 * row + 60}" '
             'role="img" aria-label="latency quantiles">', '<text x="4" y="16" class="t">latency quantiles</text>']
    for i, k in enumerate(keys):
        for j, (side, colour) in enumerate(((m.baseline_ms, BASE), (m.candidate_ms, CAND))):
            v = side.get(k)
            if v is None or v != v:
                continue
            yy = 28 + (2 * i + j) * row
            w = width * v / top_v
            parts.append(f'<rect x="{left}" y="{yy}" width="{w:.1f}" height="{row - 6}" fill="{colour}"/>'
                         f'<text x="{left + w + 6:.1f}" y="{yy + 12}" class="a">{v:,.0f} ms</text>')
        parts.append(f'<text x="{left - 8}" y="{28 + 2 * i * row + row + 2}" text-anchor="end" class="a">{k}</text>')
    parts.append(_legend(left, len(keys) * 2 * row + 48))
    return "".join(parts) + "</svg>"


def _legend(x: int, y: int) -> str:
    return (f'<rect x="{x}" y="{y - 10}" width="12" height="12" fill="{BASE}"/><text x="{x + 16}" y="{y}" class="a">'
            f'baseline</text><rect x="{x + 90}" y="{y - 10}" width="12" height="12" fill="{CAND}"/>'
            f'<text x="{x + 106}" y="{y}" class="a">candidate</text>')
