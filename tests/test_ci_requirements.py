"""With CI=true every optional part the suite exercises must be present: a missing one fails the
run here, by name, instead of skipping its tests (PostgreSQL: tests/conftest.py)."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.skipif(os.environ.get("CI", "").lower() != "true", reason="only enforced with CI=true")


def test_redis_is_reachable():
    import redis

    assert redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=2).ping()


def test_minilm_and_onnxruntime_are_installed():
    import onnxruntime  # noqa: F401

    from sluice.evals.backends.embedding import minilm_available

    assert minilm_available(), "CI=true: the MiniLM embedding model package must be installed"


def test_the_compiled_decoder_is_built_and_enabled():
    from sluice.telemetry import fastpath

    assert fastpath.built() and fastpath.enabled(), "CI=true: sluice.telemetry._otlpfast must be built"
