"""``sluice audit TRACE_ID | log | verify``: what produced an answer, and the change log."""

from __future__ import annotations

from urllib.parse import quote

import typer

from sluice.audit.changes import summarize
from sluice.audit.log import AuditEntry, ChainCheck, list_audit, verify_chain
from sluice.cli import context
from sluice.cli.output import print_json, table, when
from sluice.errors import DataError, NotFoundError
from sluice.telemetry import schema as _schema  # noqa: F401 - registers the telemetry tables before the store opens
from sluice.telemetry.timespec import parse_instant_ns


def audit(
    what: str = typer.Argument(..., metavar="TRACE_ID|log|verify",
                               help="A trace id to audit; 'log' lists changes; 'verify' checks the log's hash chain."),
    since: str = typer.Option(None, "--since", help="log: only entries since (ISO-8601, Unix seconds, or 7d ago)."),
    deployment: str = typer.Option(None, "--deployment", "-d", help="log: only entries about this deployment."),
    limit: int = typer.Option(1000, "--limit", help="log: at most this many (the newest)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Audit one answer (deployment, route, release and every component, the gate that approved
    it, rollout decisions around it, feedback and online evaluations), or list / verify the
    append-only log of changes (releases, gates, deployments, rollouts, keys)."""
    server = context.remote()  # while sluice serve holds the embedded store: through its /api/audit
    store = context.store() if server is None else None
    if what == "log":
        since_s = parse_instant_ns(since, "--since") / 1e9 if since else None
        if server is not None:
            found = server.call("GET", "/api/audit/log", params={
                "since": str(since_s) if since_s is not None else None, "deployment": deployment,
                "limit": max(1, min(limit, 10_000))})["entries"]
            entries = [AuditEntry(**e) for e in found]
        else:
            entries = list_audit(store, since=since_s, deployment=deployment, limit=max(1, limit))
        if as_json:
            print_json({"entries": [e.as_dict() for e in entries]})
            return
        if not entries:
            context.console_err().print("no audit entries" + (" match" if since or deployment else " yet"))
            return
        table("seq", "when", "actor", "action", "subject", "change",
              rows=[[e.seq, when(e.created_at), e.actor, e.action, e.subject, summarize(e.before, e.after, action=e.action)]
                    for e in entries])
        return
    if what == "verify":
        check = ChainCheck(**server.call("GET", "/api/audit/verify")) if server is not None else verify_chain(store)
        if as_json:
            print_json({"ok": check.ok, "entries": check.entries, "bad_seq": check.bad_seq, "reason": check.reason})
        if not check.ok:
            raise DataError(f"audit log chain broken after {check.entries} good entries: {check.reason}")
        if not as_json:
            context.console().print(f"audit log intact: {check.entries} entries, every hash verified")
        return
    from sluice.audit.render import render_trace_audit
    from sluice.audit.trace import audit_trace

    if server is not None:
        report = server.call("GET", f"/api/audit/{quote(what, safe='')}", answer_404=True)
    else:
        report = audit_trace(store, what)
    if as_json:
        print_json(report)
    else:
        render_trace_audit(report, context.console())
    if not report["found"]:
        raise typer.Exit(int(NotFoundError.exit_code))
