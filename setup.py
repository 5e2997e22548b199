"""Builds the optional compiled OTLP decoder (``sluice.telemetry._otlpfast``); all other metadata
lives in pyproject.toml. Without a C compiler the install still succeeds and ingest uses the
pure-Python decoder (slower; ``CI=true`` test runs refuse that)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("sluice.telemetry._otlpfast", ["src/sluice/telemetry/_otlpfast.c"],
                             extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wno-unused-function"],
                             optional=True)])
