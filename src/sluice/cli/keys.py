"""``sluice keys create|list|revoke``: ingest and admin API keys for ``sluice serve``."""

from __future__ import annotations

import datetime as dt

import typer
from rich.table import Table

from sluice.auth.keys import SCOPES, ApiKey, create_key, list_keys, revoke_key
from sluice.cli import context
from sluice.cli.output import print_json
from sluice.telemetry import schema as _schema  # noqa: F401 - registers the telemetry tables before the store opens

app = typer.Typer(help="Create, list and revoke API keys (stored hashed).", no_args_is_help=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="What the key is for, e.g. 'checkout-app'."),
    scope: str = typer.Option("ingest", "--scope", help=f"One of: {', '.join(SCOPES)}."),
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    server = context.remote()
    if server is not None:
        body = server.call("POST", "/api/keys", json={"name": name, "scope": scope})
        rec, secret = ApiKey(body["id"], body["name"], body["scope"], body["created_at"]), body["secret"]
    else:
        rec, secret = create_key(context.store(), name, scope)
    context.console_err().print(f"created {rec.scope} key {rec.id} ({rec.name}); it will not be shown again:")
    typer.echo(secret)


@app.command("list")
def list_(
    all_: bool = typer.Option(False, "--all", help="Include revoked keys."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """List keys (ids, names, scopes — never secrets)."""
    server = context.remote()
    if server is not None:
        keys = [ApiKey(**k) for k in server.call("GET", "/api/keys", params={"all": str(all_).lower()})["keys"]]
    else:
        keys = list_keys(context.store(), include_revoked=all_)
    if as_json:
        print_json([{"id": k.id, "name": k.name, "scope": k.scope, "created_at": k.created_at,
                     "revoked_at": k.revoked_at} for k in keys])
        return
    table = Table("id", "name", "scope", "created", "revoked")

    def when(t: float | None) -> str:
        return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%d %H:%M") if t else ""

    for k in keys:
        table.add_row(k.id, k.name, k.scope, when(k.created_at), when(k.revoked_at))
    context.console().print(table)


@app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="The key id shown by 'sluice keys list'.")) -> None:
    """Revoke a key (a running server stops accepting it within a few seconds)."""
    server = context.remote()
    rec = ApiKey(**server.call("DELETE", f"/api/keys/{key_id}")) if server is not None \
        else revoke_key(context.store(), key_id)
    context.console_err().print(f"revoked key {rec.id} ({rec.name})")
