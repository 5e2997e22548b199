"""Fixtures for gateway tests: a scripted upstream on loopback."""

from __future__ import annotations

import pytest

from sluice.testing.upstream import scripted_upstream


@pytest.fixture
def upstream():
    with scripted_upstream() as url:
        yield url
