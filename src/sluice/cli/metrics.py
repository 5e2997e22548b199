"""Commands over production traces: ``sluice metrics`` and ``sluice dataset from-traces``."""

from __future__ import annotations

import orjson
import typer
from rich.cells import cell_len
from rich.table import Column, Table

from sluice.cli import context
from sluice.telemetry import schema as _schema  # noqa: F401 - registers the telemetry tables before the store opens
from sluice.telemetry.metrics import DIMENSIONS, MetricsQuery, compute_metrics
from sluice.telemetry.release_refs import traced_values
from sluice.telemetry.timespec import parse_duration, parse_instant_ns

TABLE_COLUMNS = (
    ("requests", "req", "{:d}"), ("error_rate", "err", "{:.1%}"), ("fallback_rate", "fallback", "{:.1%}"),
    ("cache_hit_rate", "cache", "{:.1%}"), ("latency_p50_ms", "p50 ms", "{:.0f}"),
    ("latency_p95_ms", "p95 ms", "{:.0f}"), ("latency_p99_ms", "p99 ms", "{:.0f}"),
    ("ttft_p50_ms", "ttft p50", "{:.0f}"), ("tokens_per_request", "tok/req", "{:.1f}"),
    ("cost_per_request", "$/req", "{:.5f}"), ("eval_fail_rate", "eval fail", "{:.1%}"),
    ("thumbs_down_rate", "👎", "{:.1%}"), ("escalation_rate", "escal.", "{:.1%}"),
)


def metrics(
    deployment: str = typer.Option(None, "--deployment", "-d", help="Only this deployment."),
    release: str = typer.Option(None, "--release", help="Only this release: name@version, name, a short or full "
                                "digest, or as traced."),
    route: str = typer.Option(None, "--route", help="Only this route (stable, canary, fallback, …)."),
    cohort: str = typer.Option(None, "--cohort", help="Only this cohort."),
    since: str = typer.Option("24h", "--since", help="Start: ISO-8601, Unix seconds, or a duration ago (1h)."),
    until: str = typer.Option(None, "--until", help="End (exclusive), same forms as --since."),
    window: str = typer.Option(None, "--window", help="Bucket width (5m, 1h); omit for one bucket."),
    group_by: str = typer.Option(",".join(DIMENSIONS), "--group-by", help="Comma-separated dimensions."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Request, error, fallback and cache rates, latency and TTFT quantiles, tokens, cost, evaluator
    fail and feedback rates by deployment × release × route × cohort × window."""
    server = context.remote()
    fields = dict(deployment=deployment, route=route, cohort=cohort,
                  since_ns=parse_instant_ns(since, "--since") if since else None,
                  until_ns=parse_instant_ns(until, "--until") if until else None,
                  window_s=int(parse_duration(window, "--window")) if window else None,
                  group_by=tuple(g.strip() for g in group_by.split(",") if g.strip()))
    q = MetricsQuery(**fields)  # checks the options before anything is asked
    if server is not None:  # through the running server that holds the store (it resolves --release)
        rows = server.call("GET", "/api/metrics", params={
            "deployment": deployment, "release": release, "route": route, "cohort": cohort,
            "since": str(q.since_ns / 1e9) if q.since_ns is not None else None,
            "until": str(q.until_ns / 1e9) if q.until_ns is not None else None, "window": window,
            "group_by": ",".join(q.group_by)})["groups"]
        names = {r["digest"]: f"{r['name']}@{r['version']}" for r in server.call("GET", "/api/releases")["releases"]}
    else:
        store = context.store()
        q = MetricsQuery(release=traced_values(store, release) if release else None, **fields)
        rows = compute_metrics(store, q)
        names = _release_names(rows)
    if as_json:
        typer.echo(orjson.dumps({"groups": rows}, option=orjson.OPT_INDENT_2).decode())
        return
    if not rows:
        context.console_err().print("no spans in the selected range")
        return
    keys = list(q.group_by) + (["window_start"] if q.window_s else [])
    cells = [[_group_value(k, r[k], names) for k in keys] + [_fmt(r[k], f) for k, _, f in TABLE_COLUMNS]
             for r in rows]
    # a number is never cut: every column is as wide as its widest cell; a table wider than the
    # terminal wraps whole lines rather than shortening digits to "141…"
    labels = keys + [label for _, label, _ in TABLE_COLUMNS]
    widths = [max(cell_len(c) for c in (label, *col)) for label, col in zip(labels, zip(*cells))]
    table = Table(*(Column(label, no_wrap=True, min_width=w, justify="left" if i < len(keys) else "right")
                    for i, (label, w) in enumerate(zip(labels, widths))))
    for row in cells:
        table.add_row(*row)
    console = context.console()
    console.print(table, width=max(console.width, table_width(widths)), crop=False)


def table_width(widths: list[int]) -> int:
    """Rich's box table: each column its content plus 2 of padding plus 1 border, and one more border."""
    return sum(w + 3 for w in widths) + 1


def _release_names(rows: list[dict]) -> dict[str, str]:
    """digest -> name@version for the releases this store knows, so the table reads as releases."""
    digests = {r.get("release") for r in rows if str(r.get("release") or "").startswith("sha256:")}
    names = {}
    for d in digests:
        rec = context.store().get_release(d)
        if rec is not None:
            names[d] = f"{rec.name}@{rec.version}"
    return names


def _group_value(key: str, value, names: dict[str, str]) -> str:
    if key == "release" and value in names:
        return names[value]
    if key == "release" and str(value or "").startswith("sha256:"):
        return str(value)[:19]
    return str(value) if value not in (None, "") else "-"


def _fmt(value, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def dataset_from_traces(
    name: str = typer.Argument(..., help="Dataset name to add the new version to."),
    by: str = typer.Option("cohort", "--by", help="cohort | failure | feedback"),
    cohort: str = typer.Option(None, "--cohort", help="Only this cohort."),
    deployment: str = typer.Option(None, "--deployment", "-d", help="Only this deployment."),
    release: str = typer.Option(None, "--release", help="Only this release (any form the metrics table shows)."),
    since: str = typer.Option(None, "--since", help="Only traces since (ISO-8601, Unix seconds, or 7d ago)."),
    limit: int = typer.Option(100, "--limit", help="Traces per cohort (--by cohort) or in total."),
    seed: int = typer.Option(0, "--seed", help="Sampling seed (same seed + same data = same version)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Sample production traces into a new dataset version (input, retrieved context, output, trace id)."""
    from sluice.cli.output import print_json
    from sluice.telemetry.sampling import from_traces

    store = context.store()
    record, created, skipped = from_traces(
        store, name, by=by, cohort=cohort, deployment=deployment,
        release=traced_values(store, release) if release else None,
        since_ns=parse_instant_ns(since, "--since") if since else None, limit=limit, seed=seed)
    if as_json:
        print_json({"name": record.name, "version": record.version, "rows": record.row_count,
                    "cohorts": record.cohorts, "created": created, "skipped": skipped})
        return
    verb = "created" if created else "already exists:"
    cohorts = ", ".join(f"{c} {n}" for c, n in record.cohorts.items())
    context.console().print(f"{verb} {record.name}@{record.version[:19]} — {record.row_count} rows ({cohorts})"
                            + (f"; {skipped} traces skipped (no input recorded)" if skipped else ""))
