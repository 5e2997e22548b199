"""``sluice init``: a working example project to start from."""

from __future__ import annotations

from pathlib import Path

import typer

from sluice.cli import context
from sluice.demo.project import write_project
from sluice.errors import ConfigError


def init(
    directory: str = typer.Argument("sluice-project", help="folder to create"),
    force: bool = typer.Option(False, "--force", help="write into a folder that is not empty"),
) -> None:
    """Scaffold a working example: config, two releases, a dataset, a gate policy and a rollout plan."""
    root = Path(directory)
    if root.exists() and any(root.iterdir()) and not force:
        raise ConfigError(f"{root} is not empty (use --force to write into it)")
    paths = write_project(root, versions=("1.0.0", "1.2.0"))
    c = context.console()
    c.print(f"created {root}/ with sluice.yaml, gate.yaml, rollout.yaml, data/support.jsonl and releases v1.0.0, v1.2.0")
    c.print("next:")
    c.print(f"  cd {root}")
    c.print("  sluice release register releases/v1.0.0 releases/v1.2.0")
    c.print("  sluice dataset import support data/support.jsonl")
    c.print("  sluice gate --candidate support-agent@1.2.0 --baseline support-agent@1.0.0 --dataset support --policy gate.yaml")
    c.print("then roll it out (README 'Five-minute tour'): sluice serve, then sluice rollout start rollout.yaml")
    del paths
