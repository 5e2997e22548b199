"""``sluice demo``: the whole gate loop, offline, on the embedded store.

Writes the example project (three releases of a support agent whose model is scripted — a fake,
local model), registers the releases, imports the dataset and gates both candidates against the
baseline. The fast candidate must fail on the billing cohort and the careful one must pass; if
either does not, the demo says so and exits non-zero, because then Sluice is broken.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from sluice.config import load_settings
from sluice.dataset.version import import_dataset
from sluice.demo.project import write_project
from sluice.gate.report.terminal import banner
from sluice.release.loader import load_release
from sluice.release.registry import register
from sluice.store import open_store
from sluice.workflow import gate as gate_flow

BASELINE, FAST, CAREFUL = "support-agent@1.0.0", "support-agent@1.1.0", "support-agent@1.2.0"


@dataclass
class DemoOutcome:
    ok: bool
    fast: gate_flow.GateOutcome
    careful: gate_flow.GateOutcome
    root: Path


def run(root: Path, out: Console, err: Console, progress: bool = True) -> DemoOutcome:
    paths = write_project(root, versions=("1.0.0", "1.1.0", "1.2.0"))
    settings = load_settings(paths["config"], environ={})
    settings.store = f"duckdb:///{(root / '.sluice' / 'sluice.duckdb').resolve()}"
    reports = root / "reports"
    store = open_store(settings.store)
    try:
        for version in ("1.0.0", "1.1.0", "1.2.0"):
            record, _ = register(store, load_release(paths[version]))
            out.print(f"release {record.name}@{record.version} {record.digest[:19]}")
        dataset, _ = import_dataset(store, "support", paths["dataset"], description="support agent contract")
        out.print(f"dataset support {dataset.version[:19]}: {dataset.row_count} rows in cohorts "
                  + ", ".join(f"{c} ({n})" for c, n in sorted(dataset.cohorts.items())))

        outcomes = {}
        for name, candidate in (("fast", FAST), ("careful", CAREFUL)):
            out.rule(f"gate: {candidate} vs {BASELINE}")
            opts = gate_flow.GateOptions(
                candidate=candidate, baseline=BASELINE, dataset="support", policy=str(paths["policy"]),
                html=str(reports / f"gate-{name}.html"), markdown=str(reports / f"gate-{name}.md"),
                junit=str(reports / f"gate-{name}.junit.xml"), json=str(reports / f"gate-{name}.json"),
                progress=progress)
            outcome = gate_flow.run(store, settings, opts, err)
            out.print(banner(outcome.result))  # the full tables are in the reports and `sluice gate`
            outcomes[name] = outcome
    finally:
        store.close()

    fast, careful = outcomes["fast"], outcomes["careful"]
    ok = fast.result.verdict == "fail" and careful.result.verdict == "pass"
    return DemoOutcome(ok=ok, fast=fast, careful=careful, root=root)
