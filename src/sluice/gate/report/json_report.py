"""The JSON report: ``GateResult`` as JSON, schema ``sluice.gate.v1`` (keys listed in docs/gate.md)."""

from __future__ import annotations

import orjson

from sluice.gate.result import GateResult

TOP_LEVEL_KEYS = ("schema", "verdict", "exit_code", "reasons", "policy_digest", "candidate", "baseline",
                  "dataset_name", "dataset_version", "evaluators", "confidence", "cohorts", "checks", "eval",
                  "latency", "cost", "errors", "regressed_rows", "regressed_row_count", "warnings")


def to_json(result: GateResult) -> str:
    data = result.to_json_dict()
    ordered = {k: data[k] for k in TOP_LEVEL_KEYS}
    return orjson.dumps(ordered, option=orjson.OPT_INDENT_2).decode() + "\n"
