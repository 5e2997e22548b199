"""Audit tests reuse the gateway test helpers (release folders, a served gateway) and its upstream."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "gateway"))

from sluice.testing.upstream import scripted_upstream  # noqa: E402


@pytest.fixture
def upstream():
    with scripted_upstream() as url:
        yield url
