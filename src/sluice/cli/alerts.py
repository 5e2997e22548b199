"""``sluice alerts list``: open alerts of the monitors, then those resolved recently."""

from __future__ import annotations

import typer

from sluice.cli import context
from sluice.cli.output import print_json, table, when
from sluice.monitor.alerts import list_alerts
from sluice.monitor.measure import ALL
from sluice.telemetry import schema as _schema  # noqa: F401 - registers the telemetry tables before the store opens
from sluice.telemetry.timespec import parse_duration

app = typer.Typer(help="Alerts raised by the monitors in sluice.yaml (evaluated by sluice serve).",
                  no_args_is_help=True)


@app.command("list")
def list_(
    open_only: bool = typer.Option(False, "--open", help="Only open alerts."),
    deployment: str = typer.Option(None, "--deployment", "-d", help="Only this deployment."),
    recent: str = typer.Option("7d", "--recent", help="List alerts resolved this long ago (1h, 7d)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Open alerts, then alerts resolved within --recent, newest first."""
    found = list_alerts(context.store(), recent_s=parse_duration(recent, "--recent"), include_resolved=not open_only,
                        deployment=deployment)
    if as_json:
        print_json({"alerts": [a.as_dict() for a in found]})
        return
    if not found:
        context.console_err().print("no alerts" + (" open" if open_only else f" open or resolved in the last {recent}"))
        return
    table("status", "monitor", "deployment", "cohort", "opened", "resolved", "sent", "reason",
          rows=[[a.status, a.monitor, a.deployment, "all" if a.cohort == ALL else a.cohort, when(a.opened_at),
                 when(a.resolved_at), a.notifications, a.reason + (f" [delivery: {a.last_error}]" if a.last_error else "")]
                for a in found])
