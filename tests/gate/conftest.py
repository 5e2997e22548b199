"""Fixtures of the gate tests; the run builders live in gate_builders.py (importable by name)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)
