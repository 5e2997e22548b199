"""Map OpenInference, traceAI (legacy ``fi.*``/``llm.*`` and current ``gen_ai.*``) and OpenTelemetry
GenAI attributes onto the typed columns of the span table.

Precedence follows the most-specific-source rule (reference/conventions.md §4.3): the response
model over the request model, explicit totals over computed ones, explicit cost over the price
table. Attributes consumed into a typed column are dropped from the JSON column; everything else
is kept there, with the resource under ``@resource`` and span events under ``@events``.
"""

from __future__ import annotations

import math

import time
from typing import Any

import orjson

from sluice.telemetry.config import Price, TelemetrySettings
from sluice.telemetry.otlp_model import RawSpan
from sluice.telemetry import values

KIND_KEYS = ("openinference.span.kind", "fi.span.kind", "gen_ai.span.kind")
OPERATION_KINDS = {
    "chat": "LLM", "text_completion": "LLM", "generate_content": "LLM", "embeddings": "EMBEDDING",
    "retrieval": "RETRIEVER", "execute_tool": "TOOL", "invoke_agent": "AGENT", "create_agent": "AGENT",
    "rerank": "RERANKER",
}
MODEL_KEYS = ("llm.response.model_name", "gen_ai.response.model", "llm.model_name", "llm.request.model_name",
              "gen_ai.request.model", "embedding.model_name")
PROVIDER_KEYS = ("gen_ai.provider.name", "llm.provider", "llm.system", "gen_ai.system")
INPUT_KEYS = ("llm.token_count.prompt", "gen_ai.usage.input_tokens")
OUTPUT_KEYS = ("llm.token_count.completion", "gen_ai.usage.output_tokens")
TOTAL_KEYS = ("llm.token_count.total", "gen_ai.usage.total_tokens")
COST_TOTAL_KEYS = ("sluice.cost", "llm.cost.total", "gen_ai.cost.total", "gen_ai.usage.cost")
COST_PART_KEYS = (("llm.cost.prompt", "llm.cost.completion"), ("gen_ai.cost.input", "gen_ai.cost.output"))
ERROR_KEYS = ("error.type", "exception.type")
TOOL_KEYS = ("tool.name", "gen_ai.tool.name")
STEP_KEYS = ("sluice.agent_step", "graph.node.name", "gen_ai.agent.graph.node_name", "graph.node.id",
             "gen_ai.agent.graph.node_id")
SESSION_KEYS = ("session.id", "gen_ai.conversation.id")
USER_KEYS = ("user.id", "enduser.id")
FIRST_TOKEN_EVENTS = ("First Token Stream Event", "gen_ai.first_token", "first_token")
EVALUATION_EVENT = "gen_ai.evaluation.result"  # OTel GenAI: one event per evaluation of the span
REQUEST_PARAMETERS = "gen_ai.request.parameters"  # traceAI: the request's JSON (model inside when streaming)
STATUS = ("UNSET", "OK", "ERROR")
PASS_LABELS = {"pass", "passed", "true", "ok", "correct", "success", "yes"}
FAIL_LABELS = {"fail", "failed", "false", "incorrect", "failure", "no", "error"}

Lookup = tuple[str, str | None, bool]


# Aliased attributes consumed into one column: (column slot, rank); rank 0 wins over rank 1…
_ALIASES = (KIND_KEYS, MODEL_KEYS, PROVIDER_KEYS, INPUT_KEYS, OUTPUT_KEYS, TOTAL_KEYS, COST_TOTAL_KEYS, ERROR_KEYS,
            TOOL_KEYS, STEP_KEYS, SESSION_KEYS, USER_KEYS, ("sluice.fallback_used",), ("sluice.cache_hit",),
            ("sluice.ttft_ms",), ("gen_ai.server.time_to_first_token",), ("sluice.request",))
(_KIND, _MODEL, _PROVIDER, _INPUT, _OUTPUT, _TOTAL, _COST, _ERROR, _TOOL, _STEP, _SESSION, _USER, _FALLBACK,
 _CACHE_HIT, _TTFT, _SERVER_TTFT, _REQUEST) = range(len(_ALIASES))
_SLOT_OF = {key: (slot, rank) for slot, keys in enumerate(_ALIASES) for rank, key in enumerate(keys)}
_EMPTY = (None, "")
_COST_PART_SET = frozenset(k for keys in COST_PART_KEYS for k in keys)


class Normalizer:
    """Turns ``RawSpan`` into span-table rows (tuples in ``schema.SPAN_COLUMNS`` order).

    One pass over each span's attributes sorts them into the aliased columns (first listed
    alias with a value wins) and the rest, which become the JSON column; no per-span copies.
    """

    def __init__(self, settings: TelemetrySettings | None = None):
        self.settings = settings or TelemetrySettings()
        s = self.settings
        self._deployment = [_lookup(n) for n in s.deployment_attributes]
        self._release = [_lookup(n) for n in s.release_attributes]
        self._route = [_lookup(n) for n in s.route_attributes]
        self._cohort = [_lookup(n) for n in s.cohort_attributes]
        self._prices = sorted(s.prices.items(), key=lambda kv: -len(kv[0]))

    def rows(self, spans: list[RawSpan]) -> tuple[list[tuple], list[tuple]]:
        """Span rows and online-evaluation rows (from evaluator spans and ``evaluations.*``)."""
        now = time.time()
        out, evals = [], []
        row = self.row
        for sp in spans:
            r = row(sp, now)
            out.append(r)
            if r[4] == "EVALUATOR" or has_evaluations(sp):
                evals.extend(_evaluations(sp, r[4], now))
        return out, evals

    def row(self, sp: RawSpan, now: float) -> tuple:
        a = sp.attributes
        res = sp.resource
        meta: list = []  # lazily parsed ``metadata`` JSON, shared by the lookups of this span
        slots: list = [None] * len(_ALIASES)
        ranks = [99] * len(_ALIASES)
        keys: list = [None] * len(_ALIASES)
        rest = {}
        slot_of = _SLOT_OF.get
        for k, v in a.items():
            hit = slot_of(k)
            if hit is None:
                rest[k] = v
            elif hit[1] < ranks[hit[0]] and v not in _EMPTY:
                slots[hit[0]] = v
                ranks[hit[0]] = hit[1]
                keys[hit[0]] = k
        untyped: list[int] = []  # slots whose value fits no typed column: kept in the JSON column
        kind, model = slots[_KIND], slots[_MODEL]
        if model is None and REQUEST_PARAMETERS in rest:
            model = _parse_metadata(rest[REQUEST_PARAMETERS]).get("model") or None
        input_tokens = _typed(_int, slots, _INPUT, untyped)
        output_tokens = _typed(_int, slots, _OUTPUT, untyped)
        total_tokens = _typed(_int, slots, _TOTAL, untyped)
        if total_tokens is None and (input_tokens is not None or output_tokens is not None):
            total_tokens = (input_tokens or 0) + (output_tokens or 0)
        kind = str(kind).upper() if kind else OPERATION_KINDS.get(
            str(a.get("gen_ai.operation.name")), "LLM" if model or total_tokens is not None else "UNKNOWN")
        cost = _typed(_float, slots, _COST, untyped)
        if cost is None:
            cost = _cost_parts(rest)
        if cost is None and model and (input_tokens or output_tokens):
            price = self._price(str(model))
            if price is not None:
                cost = ((input_tokens or 0) * price.input + (output_tokens or 0) * price.output) / 1_000_000
        error_type = slots[_ERROR] or _exception_type(sp.events)
        status = STATUS[sp.status_code] if 0 <= sp.status_code <= 2 else "UNSET"
        if error_type and status != "OK":
            status = "ERROR"
        route = _resolve(self._route, a, res, meta) or ""
        ttft = _typed(_float, slots, _TTFT, untyped)
        if ttft is None:
            server_ttft = _typed(_float, slots, _SERVER_TTFT, untyped)
            ttft = server_ttft * 1000.0 if server_ttft is not None else _first_token_ms(sp)
        for slot in untyped:
            rest[keys[slot]] = slots[slot]
        return (
            sp.trace_id, sp.span_id, sp.parent_id, _str(sp.name), _str(kind), sp.start_ns,
            max(sp.end_ns - sp.start_ns, 0) / 1e6, status, _str(error_type), _str(model),
            _str(slots[_PROVIDER]), input_tokens, output_tokens, total_tokens, cost,
            _resolve(self._deployment, a, res, meta) or "", _resolve(self._release, a, res, meta) or "",
            route, _resolve(self._cohort, a, res, meta) or "",
            bool(_bool(slots[_FALLBACK])) or route == "fallback", bool(_bool(slots[_CACHE_HIT])) or route == "cache",
            _str(slots[_STEP]), _str(slots[_TOOL]), _str(slots[_SESSION]), _str(slots[_USER]), ttft,
            not sp.parent_id or bool(_bool(slots[_REQUEST])), _str(res.get("service.name")),
            _attributes_json(rest, sp), now,
        )

    def _price(self, model: str) -> Price | None:
        """Exact model name first, else the longest configured prefix (``gpt-4o`` prices ``gpt-4o-2024-08-06``)."""
        exact = self.settings.prices.get(model)
        if exact is not None:
            return exact
        for name, price in self._prices:
            if model.startswith(name):
                return price
        return None


def _cost_parts(rest: dict) -> float | None:
    """Summed partial costs of the first convention present; its keys leave the JSON column."""
    if _COST_PART_SET.isdisjoint(rest):
        return None
    for keys in COST_PART_KEYS:
        parts = [_float(rest.get(k)) for k in keys]
        if any(p is not None for p in parts):
            for k in keys:
                rest.pop(k, None)
            return sum(p or 0.0 for p in parts)
    return None


def _lookup(name: str) -> Lookup:
    """(key, metadata key or None, resource only) for one configured attribute name."""
    if name.startswith("resource."):
        return name[len("resource."):], None, True
    return name, name[len("metadata."):] if name.startswith("metadata.") else None, False


def _resolve(lookups: list[Lookup], a: dict, res: dict, meta: list) -> str | None:
    """The first non-empty configured attribute: span, then resource, then the ``metadata`` JSON of
    the span, then that of the resource (traceAI's ``register(metadata=...)`` puts it there)."""
    for key, meta_key, resource_only in lookups:
        v = res.get(key) if resource_only else a.get(key)
        if v is None and not resource_only:
            v = res.get(key)
            if v is None and meta_key is not None:
                if not meta:
                    meta.append(_parse_metadata(a.get("metadata")))
                    meta.append(_parse_metadata(res.get("metadata")))
                v = meta[0].get(meta_key)
                if v is None:
                    v = meta[1].get(meta_key)
        if v is not None and v != "":
            return _str(values.dumps(v) if isinstance(v, (dict, list)) else v)
    return None


def _parse_metadata(value: Any) -> dict:
    if isinstance(value, dict):
        return value
    if isinstance(value, str) and value[:1] == "{":
        try:
            parsed = orjson.loads(value)
            return parsed if isinstance(parsed, dict) else {}
        except orjson.JSONDecodeError:
            return {}
    return {}


def _exception_type(events: list) -> str | None:
    for name, _, attrs in events:
        if name == "exception" and attrs.get("exception.type"):
            return str(attrs["exception.type"])
    return None


def _first_token_ms(sp: RawSpan) -> float | None:
    for name, t, _ in sp.events:
        if name in FIRST_TOKEN_EVENTS and t >= sp.start_ns:
            return (t - sp.start_ns) / 1e6
    return None


def _attributes_json(a: dict, sp: RawSpan) -> str:
    if sp.resource:
        a["@resource"] = sp.resource
    if sp.events:
        a["@events"] = [{"name": n, "time_ns": t, "attributes": at} for n, t, at in sp.events]
    if sp.status_message:
        a["@status_message"] = sp.status_message
    return values.dumps(a, option=orjson.OPT_NON_STR_KEYS)


def has_evaluations(sp: RawSpan) -> bool:
    """Evaluation results outside evaluator spans: OpenInference ``evaluations.<i>.*``, OTel GenAI
    ``gen_ai.evaluation.*`` attributes on any span, ``gen_ai.evaluation.result`` events."""
    a = sp.attributes
    return ("evaluations.0.evaluation.name" in a or "gen_ai.evaluation.name" in a
            or any(name == EVALUATION_EVENT for name, _, _ in sp.events))


def _evaluations(sp: RawSpan, kind: str, now: float) -> list[tuple]:
    """Evaluator spans (traceAI ``gen_ai.evaluation.*``, ``eval.*``), ``gen_ai.evaluation.*`` on any
    span and in ``gen_ai.evaluation.result`` events (OTel GenAI), OpenInference ``evaluations.<i>.*``.
    A result names the span it judges (``gen_ai.evaluation.target_span_id``) or judges its own."""
    a = sp.attributes
    out = []
    if kind == "EVALUATOR" or "gen_ai.evaluation.name" in a:
        name = a.get("gen_ai.evaluation.name") or a.get("eval.name") or sp.name
        out.append(_evaluation(sp, a, name, a.get("eval.score"), a.get("eval.label"),
                               a.get("sluice.eval.passed", a.get("eval.passed")), now))
    for ev_name, _, ea in sp.events:
        if ev_name == EVALUATION_EVENT and ea.get("gen_ai.evaluation.name") not in _EMPTY:
            out.append(_evaluation(sp, ea, ea["gen_ai.evaluation.name"], None, None, ea.get("sluice.eval.passed"), now))
    i = 0
    while f"evaluations.{i}.evaluation.name" in a:
        p = f"evaluations.{i}.evaluation."
        label = a.get(p + "label")
        out.append((sp.trace_id, sp.span_id, str(a[p + "name"]), _passed(None, label), _float(a.get(p + "score")),
                    _str(label), "span", now))
        i += 1
    return out


def _evaluation(sp: RawSpan, a: dict, name: Any, score: Any, label: Any, passed: Any, now: float) -> tuple:
    """One ``span_evals`` row from ``gen_ai.evaluation.*`` keys (``score``/``label`` as fallbacks)."""
    score = _float(a.get("gen_ai.evaluation.score.value", score))
    label = a.get("gen_ai.evaluation.score.label", label)
    target = a.get("gen_ai.evaluation.target_span_id")
    span_id = target if isinstance(target, str) and target else sp.span_id
    return (sp.trace_id, span_id, str(name), _passed(passed, label), score, _str(label), "span", now)


def _passed(explicit: Any, label: Any) -> bool | None:
    b = _bool(explicit)
    if b is not None:
        return b
    text = str(label).strip().lower() if label is not None else ""
    return True if text in PASS_LABELS else False if text in FAIL_LABELS else None


_INT64 = 2**63


def _typed(convert, slots: list, slot: int, untyped: list[int]) -> Any:
    """``convert(slots[slot])``; a value it cannot take is noted in ``untyped`` so it is not lost."""
    v = slots[slot]
    typed = convert(v)
    if typed is None and v is not None:
        untyped.append(slot)
    return typed


def _int(v: Any) -> int | None:
    """A BIGINT column's value; anything that is not one (an infinite double, 30 digits) is None.

    Out-of-range numbers must not reach the insert: the whole batch would fail, and the client's
    retries with it, for one bad attribute. The raw value stays in the attributes column.
    """
    if v is None or isinstance(v, bool):
        return None
    try:
        n = int(v)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an infinite double
        return None
    return n if -_INT64 <= n < _INT64 else None


def _float(v: Any) -> float | None:
    """A finite float or None: an infinite or NaN cost or latency would poison every sum over it."""
    if v is None or isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return f if math.isfinite(f) else None


def _bool(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    return None


def _str(v: Any) -> str | None:
    """Text for a typed column; NUL characters dropped (PostgreSQL text cannot hold them)."""
    if v is None:
        return None
    s = v if isinstance(v, str) else str(v)
    return s.replace("\x00", "") if "\x00" in s else s
