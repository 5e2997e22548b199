"""``sluice rollout start|status|wait|list|events|pause|resume|promote|abort``.

Talks to a running server (``--server URL`` or ``$SLUICE_SERVER``; admin key from ``$SLUICE_API_KEY``)
or, without one, to the store directly — where the controller of a ``sluice serve`` on the same
store picks the rollout up. An embedded (DuckDB) store held by a running server cannot be opened
twice, so then the server it names in ``<store file>.server`` (else ``server.host:port``) is used.

``wait`` exit codes: 0 promoted, 1 rolled back (or aborted), 2 held, 6 narrowed, 7 timeout.
"""

from __future__ import annotations

import os
import time
from typing import Any

import typer

from sluice.cli import context
from sluice.cli.output import print_json, when
from sluice.cli.remote import Remote
from sluice.errors import ConfigError

app = typer.Typer(help="Start, watch and steer rollouts (the controller in 'sluice serve' decides).",
                  no_args_is_help=True)
WAIT_CODES = {"promoted": 0, "rolled_back": 1, "aborted": 1, "held": 2, "narrowed": 6}
TIMEOUT = 7

SERVER = typer.Option(None, "--server", envvar="SLUICE_SERVER", help="Base URL of a running 'sluice serve'.")
JSON = typer.Option(False, "--json", help="Print JSON.")


def _remote(url: str, store_path: str | None = None) -> Remote:
    from sluice.rollout.actions import GateRequired

    return Remote(url, store_path, status_errors={412: GateRequired})


class _Local:
    def __init__(self):
        from sluice.rollout.api import RolloutService

        s = context.settings()
        self.service = RolloutService(context.store(), s.rollout)


def _client(server: str | None) -> Any:
    if server:
        return _remote(server)
    try:
        held = context.remote()  # the sluice serve that announced itself holding the embedded store
        if held is not None:
            return _remote(held.base_url, held.store_path)
        return _Local()
    except ConfigError as e:
        if "in use by another process" not in e.message:
            raise
        s = context.settings().server
        return _remote(f"http://{s.host}:{s.port}")


def _actor() -> str:
    return f"cli:{os.environ.get('USER') or os.environ.get('USERNAME') or 'unknown'}"


def _get(c: Any, rollout_id: str) -> dict[str, Any]:
    if isinstance(c, Remote):
        return c.call("GET", f"/api/rollouts/{rollout_id}")
    from sluice.rollout.actions import get
    return get(c.service.store, rollout_id).view()


@app.command("start")
def start(
    plan: str = typer.Argument("rollout.yaml", help="The rollout plan (YAML)."),
    force: bool = typer.Option(False, "--force", help="Start without a passing gate (needs --reason; recorded)."),
    reason: str = typer.Option(None, "--reason", help="Why (recorded in the event log)."),
    server: str = SERVER,
    as_json: bool = JSON,
) -> None:
    """Start a rollout: needs a stored passing gate of the candidate against the deployment's stable release."""
    from pathlib import Path

    from sluice.rollout.plan import load_plan

    parsed = load_plan(plan)  # errors name the file and line before anything is sent
    c = _client(server)
    if isinstance(c, Remote):
        view = c.call("POST", "/api/rollouts", json={"plan_yaml": Path(plan).read_text(encoding="utf-8"),
                                                      "force": force, "reason": reason})
    else:
        view = c.service.start(parsed.model_dump(mode="json"), actor=_actor(), force=force, reason=reason).view()
    if as_json:
        print_json(view)
        return
    context.console().print(f"started rollout [bold]{view['id']}[/]: {view['candidate']['ref']} → "
                            f"{view['deployment']} (stable {view['stable']['ref']}), {view['steps']} steps"
                            + (f" [yellow]forced: {view['forced_reason']}[/]" if view.get("forced_reason") else ""))
    context.console_err().print(f"watch it: sluice rollout status {view['id']}   |   sluice rollout wait {view['id']}")


def _print_status(view: dict[str, Any]) -> None:
    out = context.console()
    out.print(f"[bold]{view['id']}[/] {view['deployment']}: {view['candidate']['ref']} vs {view['stable']['ref']} — "
              f"[bold]{view['status']}[/], step {view['step'] + 1}/{view['steps']}"
              + (f", dropped cohorts: {', '.join(view['dropped_cohorts'])}" if view.get("dropped_cohorts") else ""))
    d = view.get("last_decision")
    if not d:
        out.print("no look yet")
        return
    req = d.get("requests") or {}
    out.print(f"last decision: [bold]{d['action']}[/] — {d['reason']}  (requests this step: canary "
              f"{req.get('canary', 0)}, stable {req.get('stable', 0)})")
    if d.get("findings"):
        from rich.table import Table

        t = Table("metric", "cohort", "outcome", "canary", "stable", "bound", "margin", "n canary", "n stable", "rule")
        for f in d["findings"]:
            t.add_row(f["metric"], f["cohort"], f["outcome"] + (" (critical)" if f["critical"] else ""),
                      _num(f["canary"]), _num(f["stable"]), _num(f["bound"]), _num(f["margin"]),
                      str(f["canary_samples"]), str(f["stable_samples"]), f["rule"])
        out.print(t)


def _num(v: Any) -> str:
    return "" if v is None else f"{v:.4g}"


@app.command("status")
def status(rollout_id: str = typer.Argument(...), server: str = SERVER, as_json: bool = JSON) -> None:
    """Where a rollout stands: step, status, the last decision and every finding behind it."""
    view = _get(_client(server), rollout_id)
    print_json(view) if as_json else _print_status(view)


@app.command("list")
def list_(deployment: str = typer.Option(None, "--deployment", "-d"), server: str = SERVER,
          as_json: bool = JSON) -> None:
    """Rollouts, newest first."""
    c = _client(server)
    if isinstance(c, Remote):
        rows = c.call("GET", "/api/rollouts", params={"deployment": deployment} if deployment else None)["data"]
    else:
        from sluice.rollout.store import list_rollouts
        rows = [r.view() for r in list_rollouts(c.service.store, deployment=deployment)]
    if as_json:
        print_json({"data": rows})
        return
    from rich.table import Table

    t = Table("id", "deployment", "candidate", "stable", "status", "step", "last decision", "started")
    for r in rows:
        t.add_row(r["id"], r["deployment"], r["candidate"]["ref"], r["stable"]["ref"], r["status"],
                  f"{r['step'] + 1}/{r['steps']}", (r.get("last_decision") or {}).get("action", ""),
                  when(r["created_at"]))
    context.console().print(t)


@app.command("events")
def events(rollout_id: str = typer.Argument(...), server: str = SERVER, as_json: bool = JSON) -> None:
    """The event log: every start, step, decision and manual action, with who, why and the figures."""
    c = _client(server)
    if isinstance(c, Remote):
        rows = c.call("GET", f"/api/rollouts/{rollout_id}/events")["data"]
    else:
        from sluice.rollout import store as rs
        from sluice.rollout.actions import get
        get(c.service.store, rollout_id)
        rows = rs.events(c.service.store, rollout_id)
    if as_json:
        print_json({"data": rows})
        return
    for e in rows:
        context.console().print(f"{when(e['at'])}  [bold]{e['kind']}[/] by {e['actor']}: {e['message']}")


def _manual(action: str):
    def command(rollout_id: str = typer.Argument(...),
                reason: str = typer.Option("", "--reason", help="Why (recorded in the event log)."),
                server: str = SERVER, as_json: bool = JSON) -> None:
        c = _client(server)
        if isinstance(c, Remote):
            view = c.call("POST", f"/api/rollouts/{rollout_id}/{action}", json={"reason": reason})
        else:
            view = c.service.act(rollout_id, action, _actor(), reason).view()
        if as_json:
            print_json(view)
        else:
            context.console().print(f"rollout {view['id']}: {view['status']}")
    command.__doc__ = {"pause": "Pause a running rollout (the controller stops looking at it).",
                       "resume": "Resume a paused or held rollout, or pass a manual pause step.",
                       "promote": "Promote now: the candidate becomes the stable release (the old one is kept "
                                  "as the rollback target).",
                       "abort": "Abort: the canary's weight to 0 on every replica at once."}[action]
    return command


for _action in ("pause", "resume", "promote", "abort"):
    app.command(_action)(_manual(_action))


@app.command("wait")
def wait(
    rollout_id: str = typer.Argument(...),
    timeout: str = typer.Option("1h", "--timeout", help="Give up after this long (30s, 10m, 2h)."),
    poll: float = typer.Option(2.0, "--poll", help="Seconds between checks."),
    server: str = SERVER,
    as_json: bool = JSON,
) -> None:
    """Wait until the rollout ends or needs a person. Exit 0 promoted, 1 rolled back or aborted, 2 held,
    6 narrowed, 7 timeout — for CI and for apps that roll out by trace only."""
    from sluice.telemetry.timespec import parse_duration

    limit = parse_duration(timeout, "--timeout")
    c = _client(server)
    deadline = time.monotonic() + limit
    while True:
        if not isinstance(c, Remote):
            c.service.store.db.query_one("SELECT 1")
        view = _get(c, rollout_id)
        code = WAIT_CODES.get(view["status"])
        if code is not None or time.monotonic() >= deadline:
            break
        time.sleep(max(0.05, min(poll, deadline - time.monotonic())))
    if as_json:
        print_json(view)
    else:
        _print_status(view)
    raise typer.Exit(TIMEOUT if code is None else code)
