"""``sluice release register|list|show|diff``."""

from __future__ import annotations

from typing import List

import typer

from sluice.cli import context
from sluice.cli.output import print_json, table, when
from sluice.digest import short
from sluice.release.diff import diff_releases, format_changes
from sluice.release.loader import describe, load_release
from sluice.release.registry import register as register_bundle
from sluice.release.registry import resolve_bundle
from sluice.store.records import ReleaseRecord

app = typer.Typer(no_args_is_help=True)


@app.command("register")
def register(
    paths: List[str] = typer.Argument(..., help="release.yaml files or folders holding one"),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Validate and store releases; prints each digest."""
    store = context.store()
    out = []
    for path in paths:
        bundle = load_release(path)
        record, created = register_bundle(store, bundle)
        out.append(describe(bundle) | {"created": created})
        if not json:
            state = "registered" if created else "already registered"
            context.console().print(f"{state} [bold]{bundle.ref}[/] {record.digest}")
    if json:
        print_json(out)


@app.command("list")
def list_(
    name: str = typer.Argument(None, help="Only releases of this name."),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Registered releases, newest first."""
    server = context.remote()
    if server is not None:  # through the running server that holds the store
        found = server.call("GET", "/api/releases", params={"name": name})["releases"]
        records = [ReleaseRecord(r["digest"], r["name"], r["version"], {}, r["files"], r["created_at"], r["source"])
                   for r in found]
        models = [r["models"] for r in found]
    else:
        records = context.store().list_releases(name)
        models = [sorted({c.get("model", "?") for c in (r.manifest.get("components") or {}).values()})
                  for r in records]
    if json:
        print_json([{"name": r.name, "version": r.version, "digest": r.digest, "created_at": r.created_at,
                     "source": r.source} for r in records])
        return
    if not records:
        context.console().print("no releases registered yet: sluice release register PATH")
        return
    table("name", "version", "digest", "models", "registered", rows=[
        [r.name, r.version, short(r.digest), ", ".join(m), when(r.created_at)] for r, m in zip(records, models)])


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="name@version, name, digest (prefix) or path"),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """A release's normalised manifest and files."""
    server = context.remote()
    if server is not None:  # through the running server that holds the store
        r = server.call("GET", f"/api/releases/{ref}")
        digest, manifest, files, label = r["digest"], r["manifest"], r["files"], f"{r['name']}@{r['version']}"
    else:
        bundle = resolve_bundle(context.store(), ref)
        digest, manifest, files, label = bundle.digest, bundle.manifest, bundle.file_digests, bundle.ref
    if json:
        print_json({"digest": digest, "manifest": manifest, "files": files})
        return
    import yaml

    c = context.console()
    c.print(f"[bold]{label}[/] {digest}")
    c.out(yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True).rstrip(), highlight=False)
    if files:
        c.print("[bold]files[/]")
        for path, d in files.items():
            c.print(f"  {path}  {short(d)}")


@app.command("diff")
def diff(
    a: str = typer.Argument(..., help="the release before"),
    b: str = typer.Argument(..., help="the release after"),
    json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every changed field and file between two releases, sampling params flagged."""
    store = context.store()
    before, after = resolve_bundle(store, a), resolve_bundle(store, b)
    changes = diff_releases(before, after)
    if json:
        print_json([{"path": ch.path, "kind": ch.kind, "before": ch.before, "after": ch.after,
                     "sampling": ch.is_sampling, "text_diff": ch.text_diff} for ch in changes])
        return
    c = context.console()
    c.print(f"{before.ref} ({short(before.digest)}) -> {after.ref} ({short(after.digest)}): {len(changes)} change(s)")
    if changes:
        c.out(format_changes(changes), highlight=False)
