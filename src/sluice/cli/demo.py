"""``sluice demo``: gate two candidates against production, offline, and show where to look."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from sluice.cli import context
from sluice.gate.measures import ALL
from sluice.workflow import demo as demo_flow


def demo(
    directory: str = typer.Option("sluice-demo", "--dir", help="where to write the demo project"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Run the whole gate loop offline on a scripted support agent with a known cohort regression."""
    root = Path(directory)
    out, err = context.console(), context.console_err()
    outcome = demo_flow.run(root, out, err, progress=not quiet and sys.stderr.isatty())
    out.rule("what happened")
    for name, o in (("fast", outcome.fast), ("careful", outcome.careful)):
        r = o.result
        out.print(f"[bold]{demo_flow.FAST if name == 'fast' else demo_flow.CAREFUL}[/]: "
                  f"[bold]{r.verdict.upper()}[/] (exit {r.exit_code})")
        lat = next((x for x in r.latency if x.cohort == ALL), None)
        cost = r.cost_for(ALL)
        if lat is not None and cost is not None:
            out.print(f"  p50 latency {lat.baseline_ms.get('p50', 0):.0f} ms -> {lat.candidate_ms.get('p50', 0):.0f} ms, "
                      f"cost per row ${cost.cost_baseline:.5f} -> ${cost.cost_candidate:.5f}")
        for reason in r.reasons[:4]:
            out.print(f"  - {reason}")
    out.print()
    out.print("Look next at (with the venv active: source .venv/bin/activate):")
    out.print(f"  the HTML report of the failing gate:  {root / 'reports' / 'gate-fast.html'}")
    out.print(f"  the pull-request comment:            {root / 'reports' / 'gate-fast.md'}")
    out.print(f"  the passing gate:                    {root / 'reports' / 'gate-careful.html'}")
    out.print("  what changed between the releases:   "
              f"cd {root} && sluice release diff support-agent@1.0.0 support-agent@1.1.0")
    out.print(f"  the same gate in CI form:            cd {root} && sluice gate --candidate support-agent@1.1.0 "
              "--baseline support-agent@1.0.0 --dataset support --policy gate.yaml; echo $?")
    out.print(f"  rolling the passing release out:     {root / 'rollout.yaml'} (README 'Five-minute tour')")
    if not outcome.ok:
        context.console_err().print("[bold red]the demo did not behave as designed[/]: the fast candidate must "
                                    "fail and the careful one pass")
        raise typer.Exit(1)
