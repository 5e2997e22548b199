"""Traces, feedback and production metrics: OTLP decode, attribute normalisation, the span
writer, metrics queries and sampling traces into datasets. Importing ``sluice.telemetry.schema``
registers the tables."""
