"""The human form of a trace audit: short labelled sections, digests shortened."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape

from sluice.digest import short


def _kv(console: Console, label: str, value: Any) -> None:
    if value in (None, "", [], {}):
        return
    console.print(f"  [bold]{label}[/]: {escape(str(value))}")


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items())) or "provider defaults"


def render_trace_audit(report: dict[str, Any], console: Console) -> None:
    console.print(f"[bold]trace {report['trace_id']}[/]")
    a = report["answer"]
    if a is not None:
        console.print("[bold underline]answer[/]")
        _kv(console, "at", f"{a['at']} ({a['source']} span {a['span_id']}, status {a['status']})")
        _kv(console, "deployment", a["deployment"])
        _kv(console, "route", a["route"] + (" (pinned)" if a["pinned"] else "") if a["route"] else None)
        _kv(console, "cohort", a["cohort"])
        _kv(console, "model used", f"{a['model']} via {a['provider']}" if a["model"] else None)
        if a["fallback_used"]:
            _kv(console, "fallback", "yes: a fallback model answered")
        _kv(console, "error", a["error_type"])
    r = report["release"]
    if r is not None:
        console.print("[bold underline]release[/]")
        _kv(console, "release", f"{r['ref']} {r['digest']}")
        _kv(console, "target", r["target"])
        for name, c in r["components"].items():
            console.print(f"  [bold]component {escape(name)}[/]: {escape(str(c['model']))} via {escape(c['provider'])}"
                          + (f" at {escape(c['base_url'])}" if c.get("base_url") else ""))
            console.print(f"    sampling: {escape(_params(c['params']))}")
            if c["prompt_template"]:
                pt = c["prompt_template"]
                console.print(f"    prompt template: {escape(pt['path'])} {short(pt['digest'] or '')}")
            if c["system_prompt"]:
                sp = c["system_prompt"]
                console.print(f"    system prompt: {escape(sp['source'])} {short(sp['digest'])}")
            if c["context_budget"]:
                console.print(f"    context budget: {c['context_budget']} tokens")
            for f in c["fallbacks"]:
                console.print(f"    fallback: {escape(str(f['model']))} via {escape(f['provider'])}")
        if r["retriever"]:
            _kv(console, "retriever", f"index {r['retriever']['index']}, top_k {r['retriever']['top_k']}")
        _kv(console, "tools", ", ".join(f"{t['name']} {short(t['schema_digest'] or '')}".strip() for t in r["tools"]))
        for g in r["guardrails"]:
            console.print(f"  [bold]guardrail {escape(g['name'])}[/] ({g['type']}, {g.get('action', 'block')}): "
                          f"{escape(g['outcome'])}")
    gate = report["gate"]
    if gate is not None:
        console.print("[bold underline]gate[/]")
        _kv(console, "record", f"{gate['id']}: {gate['verdict']}" + (" (forced: " + gate["forced_reason"] + ")"
                                                                     if gate["forced"] else ""))
        _kv(console, "dataset", f"{gate['dataset_name']}@{short(gate['dataset_version'])}")
        _kv(console, "baseline", gate["baseline_ref"] or short(gate["baseline"]))
        _kv(console, "policy", short(gate["policy_digest"]))
        _kv(console, "when", gate["at"])
        _kv(console, "by", gate["by"] or "not recorded")
    change = report["deployment_change"]
    if change is not None:
        console.print("[bold underline]deployment[/]")
        _kv(console, "last change before", f"#{change['seq']} {change['action']} by {change['actor']} at {change['at']}")
    if report["rollout"]:
        console.print("[bold underline]rollout (24 h either side)[/]")
        for e in report["rollout"]:
            detail = e["detail"] if isinstance(e["detail"], str) else ""
            console.print(f"  {e['at']} {escape(e['action'])} by {escape(e['actor'])}"
                          + (f": {escape(detail)}" if detail else ""))
    if report["feedback"] or report["evaluations"]:
        console.print("[bold underline]outcome[/]")
        for f in report["feedback"]:
            console.print(f"  feedback: {escape(f['kind'])}" + (f" — {escape(f['comment'])}" if f.get("comment") else ""))
        for e in report["evaluations"]:
            verdict = "pass" if e["passed"] else "fail" if e["passed"] is False else "not judged"
            console.print(f"  evaluation {escape(e['evaluator'])}: {verdict}"
                          + (f" (score {e['score']:.3g})" if e["score"] is not None else ""))
    for note in report["notes"]:
        console.print(f"[yellow]note:[/] {escape(note)}")
