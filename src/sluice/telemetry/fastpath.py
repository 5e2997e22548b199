"""OTLP protobuf bodies straight to span-table columns through the compiled ``_otlpfast`` module.

``decode_columns`` returns what ``otlp.decode`` + ``Normalizer.rows`` + ``SpanBatch.from_rows``
would (the same values, column by column), or None when the body must take the pure-Python
path: the extension is not built, or it declined the body (malformed input, so that the error
and its message come from the reference; or a shape it does not take). The pure-Python path
stays the reference; ``tests/telemetry/test_otlpfast.py`` compares the two on many payloads.

``SLUICE_OTLP_FAST=0`` turns the compiled path off (diagnosis, benchmarks of the reference).
"""

from __future__ import annotations

import os
import time
from typing import Any, NamedTuple

import orjson

from sluice.telemetry import normalize as n
from sluice.telemetry.otlp_model import RawSpan
from sluice.telemetry.writer import SpanBatch
from sluice.telemetry import values

try:
    from sluice.telemetry import _otlpfast
except ImportError:  # not compiled (pip install -e . builds it; a missing compiler leaves it out)
    _otlpfast = None

_F_OPNAME, _F_METADATA, _F_SLOWSPAN, _F_PARAMS = 1, 2, 3, 4


class FastDecoded(NamedTuple):
    batch: SpanBatch
    rejected: int
    reasons: list[str]


def built() -> bool:
    """True when the compiled module is importable."""
    return _otlpfast is not None


def enabled() -> bool:
    return _otlpfast is not None and os.environ.get("SLUICE_OTLP_FAST", "1") != "0"


def decode_columns(body: bytes, normalizer: n.Normalizer, now: float | None = None) -> FastDecoded | None:
    if not enabled():
        return None
    try:
        columns, count, evals, rejected, reasons = _otlpfast.decode(
            body, _config(normalizer), time.time() if now is None else now)
    except _otlpfast.Fallback:
        return None
    return FastDecoded(SpanBatch(columns, count, evals), rejected, reasons)


def _config(normalizer: n.Normalizer) -> tuple:
    """Per-normaliser settings in the shape the C code reads (cached on the normaliser)."""
    cfg = normalizer.__dict__.get("_otlpfast_config")
    if cfg is None:
        def lookups(items: list[n.Lookup]) -> tuple:
            return tuple((key.encode(), key, meta_key, resource_only) for key, meta_key, resource_only in items)
        cfg = (normalizer, lookups(normalizer._deployment), lookups(normalizer._release), lookups(normalizer._route),
               lookups(normalizer._cohort), bool(normalizer.settings.prices))
        normalizer.__dict__["_otlpfast_config"] = cfg
    return cfg


# The pieces of normalize.py the C code calls for values other than the plain types ----------
def _kind_text(v: Any) -> str:
    return str(v).upper()


def _resolved_text(v: Any) -> str | None:
    return n._str(values.dumps(v) if isinstance(v, (dict, list)) else v)


def _row_fallback(normalizer: n.Normalizer, sp: RawSpan, now: float) -> tuple[tuple, list[tuple]]:
    """``Normalizer.rows`` for one span (spans with events, evaluations, partial costs, '@' keys)."""
    row = normalizer.row(sp, now)
    return row, n._evaluations(sp, row[4], now)


def _price_cost(normalizer: n.Normalizer, model: Any, input_tokens: Any, output_tokens: Any) -> float | None:
    price = normalizer._price(str(model))
    if price is None:
        return None
    return ((input_tokens or 0) * price.input + (output_tokens or 0) * price.output) / 1_000_000


def _setup() -> None:
    # the C code numbers the aliased columns in this order
    assert (n._KIND, n._MODEL, n._PROVIDER, n._INPUT, n._OUTPUT, n._TOTAL, n._COST, n._ERROR, n._TOOL, n._STEP,
            n._SESSION, n._USER, n._FALLBACK, n._CACHE_HIT, n._TTFT, n._SERVER_TTFT, n._REQUEST) == tuple(range(17))
    specials = {"gen_ai.operation.name": _F_OPNAME, "metadata": _F_METADATA,
                "evaluations.0.evaluation.name": _F_SLOWSPAN, "gen_ai.evaluation.name": _F_SLOWSPAN,
                n.REQUEST_PARAMETERS: _F_PARAMS}
    specials.update({k: _F_SLOWSPAN for k in n._COST_PART_SET})
    _otlpfast.setup({
        "str": n._str, "int": n._int, "float": n._float, "bool": n._bool, "kind_text": _kind_text,
        "op_kinds": n.OPERATION_KINDS, "parse_metadata": n._parse_metadata, "resolved_text": _resolved_text,
        "row_fallback": _row_fallback, "RawSpan": RawSpan, "dumps": orjson.dumps, "price_cost": _price_cost,
    }, dict(n._SLOT_OF), specials)


if _otlpfast is not None:
    _setup()
