"""``sluice gate``: the CI entry point. Exit 0 pass, 1 fail, 2 inconclusive, 3 usage or config
error, 4 data error, 5 target or upstream errors beyond the policy's error budget."""

from __future__ import annotations

import sys

import typer

from sluice.cli import context
from sluice.errors import ConfigError
from sluice.gate.report.terminal import render_terminal
from sluice.workflow import gate as gate_flow


def gate(
    candidate: str = typer.Option(..., "--candidate", help="release under test: name@version, digest or path"),
    baseline: str = typer.Option(..., "--baseline", help="the production release to compare against"),
    dataset: str = typer.Option(..., "--dataset", help="NAME or NAME@VERSION"),
    policy: str = typer.Option(None, "--policy", help="gate.yaml (default: max_regression: auto per evaluator, see docs/gate.md)"),
    json: str = typer.Option(None, "--json", help="write the JSON report here ('-': standard output)"),
    junit: str = typer.Option(None, "--junit", help="write a JUnit XML report here ('-': standard output)"),
    markdown: str = typer.Option(None, "--markdown", help="write a Markdown summary (PR comment) here ('-': stdout)"),
    html: str = typer.Option(None, "--html", help="write the HTML report here (default: in reports_dir; '-': stdout)"),
    fresh: bool = typer.Option(False, "--fresh", help="ignore cached responses and stored runs"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress bars"),
) -> None:
    """Compare a candidate release with the baseline on a dataset and give a verdict.
    A report path of '-' writes that report to standard output (the summary then goes to stderr)."""
    settings = context.settings()
    to_stdout = [name for name, path in (("json", json), ("junit", junit), ("markdown", markdown), ("html", html))
                 if path == "-"]
    if len(to_stdout) > 1:
        raise ConfigError(f"only one report can go to standard output ('-'), got --{' and --'.join(to_stdout)}")
    opts = gate_flow.GateOptions(candidate=candidate, baseline=baseline, dataset=dataset, policy=policy,
                                 json=None if json == "-" else json, junit=None if junit == "-" else junit,
                                 markdown=None if markdown == "-" else markdown, html=None if html == "-" else html,
                                 fresh=fresh, progress=not quiet and sys.stderr.isatty(),
                                 reports_dir=None if html == "-" else settings.reports_dir)
    outcome = gate_flow.run(context.store(), settings, opts, context.console_err())
    out = context.console_err() if to_stdout else context.console()
    render_terminal(outcome.result, out)
    for path in outcome.reports:
        out.print(f"report: {path}")
    if to_stdout:
        from sluice.gate.report import to_html, to_json, to_junit, to_markdown

        render = {"json": to_json, "junit": to_junit, "markdown": to_markdown, "html": to_html}[to_stdout[0]]
        typer.echo(render(outcome.result), nl=False)
    out.print(f"gate {outcome.record.id}: [bold]{outcome.result.verdict}[/] (exit {outcome.result.exit_code})")
    raise typer.Exit(outcome.result.exit_code)
