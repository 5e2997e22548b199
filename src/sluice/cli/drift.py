"""``sluice drift DEPLOYMENT``: are live inputs still like the dataset the release was gated on?"""

from __future__ import annotations

import typer

from sluice.cli import context
from sluice.cli.output import print_json
from sluice.digest import short
from sluice.telemetry import schema as _schema  # noqa: F401 - registers the telemetry tables before the store opens


def drift(
    deployment: str = typer.Argument(..., help="The deployment whose live inputs are compared."),
    dataset: str = typer.Option(None, "--dataset", help="NAME[@VERSION] (default: the gated dataset of its release)."),
    since: str = typer.Option("7d", "--since", help="Live inputs of this long ago until now (1h, 7d)."),
    max_live: int = typer.Option(500, "--max-live", help="At most this many live inputs (the newest)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Compare a deployment's live inputs with its release contract: cohort mix, input token
    lengths, share of inputs with no near neighbour in the dataset (MiniLM, offline). A stale
    dataset is flagged with the 'sluice dataset from-traces' command that would refresh it.
    Exit 0 when nothing drifted, 1 when the dataset is stale."""
    from sluice.monitor.drift_data import drift_report

    report = drift_report(context.store(), deployment, dataset=dataset, since=since, max_live=max(1, max_live))
    if as_json:
        print_json(report)
    else:
        render(report)
    if report["stale"]:
        raise typer.Exit(1)


def render(report: dict) -> None:
    out = context.console()
    name, _, version = report["dataset"].partition("@")
    out.print(f"drift of [bold]{report['deployment']}[/] against {name}@{short(version)} "
              f"({report['live_inputs']} live inputs since {report['since']} ago, {report['dataset_rows']} rows; "
              f"dataset from {report['dataset_found_by']})")
    if not report["enough_data"]:
        out.print("[yellow]not enough live inputs to judge[/] (inputs are recorded by the gateway or in "
                  "input.value / llm.input_messages of ingested spans)")
    c = report["checks"]
    mix, tok, nov = c["cohort_mix"], c["input_tokens"], c["novelty"]
    lines = [
        ("cohort mix", mix, f"total variation {mix['total_variation']:.0%}, p={mix['p_value']:.2g}"
         + (f", new: {', '.join(mix['new_cohorts'])}" if mix["new_cohorts"] else "")),
        ("input length", tok, f"median {tok['live_median']} vs {tok['dataset_median']} tokens, KS {tok['ks_distance']:.2f}"
         f", p={tok['p_value']:.2g}" if tok["live_median"] is not None else "no live inputs"),
        ("novelty", nov, f"{_pct(nov['live_novel_share'])} live vs {_pct(nov['dataset_novel_share'])} in the dataset "
         f"below cosine {nov['similarity_threshold']}"),
    ]
    for label, check, detail in lines:
        mark = "[red]DRIFT[/]" if check["flagged"] else "[green]ok[/]   "
        out.print(f"  {mark} {label}: {detail}")
    if report["stale"]:
        out.print(f"[bold]the dataset looks stale[/]; refresh it with:\n  {report['suggestion']}")


def _pct(v) -> str:
    return "-" if v is None else f"{v:.0%}"
