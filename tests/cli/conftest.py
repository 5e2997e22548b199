"""Session fixture: the toy project of cli_fixtures, registered and imported once."""

from __future__ import annotations

import json

import pytest

from cli_fixtures import BETA_BROKEN_SCRIPT, GOOD_SCRIPT, POLICY, Sluice, toy_rows, write_jsonl, write_release


@pytest.fixture(scope="session")
def toy(tmp_path_factory) -> Sluice:
    """The toy project, its three releases registered and its dataset imported as ``toy``."""
    root = tmp_path_factory.mktemp("toy")
    write_jsonl(root / "data" / "toy.jsonl", toy_rows())
    (root / "gate.yaml").write_text(POLICY)
    folders = [write_release(root, "toy", "1.0.0", temperature=0.2, script=GOOD_SCRIPT),
               write_release(root, "toy", "1.1.0", temperature=0.0, script=GOOD_SCRIPT),
               write_release(root, "toy", "2.0.0", temperature=0.2, script=BETA_BROKEN_SCRIPT)]
    sluice = Sluice(root, f"duckdb:///{root}/s.duckdb")
    reg = sluice("release", "register", *[str(f) for f in folders])
    assert reg.returncode == 0, reg.stderr
    imp = sluice("dataset", "import", "toy", "data/toy.jsonl", "--json")
    assert imp.returncode == 0, imp.stderr
    sluice.dataset_version = json.loads(imp.stdout)["version"]
    return sluice
