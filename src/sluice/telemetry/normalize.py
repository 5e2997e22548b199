"""Map OpenInference, traceAI (legacy ``fi.*``/``llm.*`` and current ``gen_ai.*``) and OpenTelemetry
GenAI attributes onto the typed columns of the span table.

Precedence follows the most-specific-source rule (reference/conventions.md §4.3): the response
model over the request model, explicit totals over computed ones, explicit cost over the price
table. Attributes consumed into a typed column are dropped from the JSON column; everything else
is kept there, with the resource under ``@resource`` and span events under ``@events``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import orjson

from sluice.telemetry.config import Price, TelemetrySettings
from sluice.telemetry.otlp import RawSpan

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
STATUS = ("UNSET", "OK", "ERROR")
PASS_LABELS = {"pass", "passed", "true", "ok", "correct", "success", "yes"}
FAIL_LABELS = {"fail", "failed", "false", "incorrect", "failure", "no", "error"}

Lookup = Callable[[dict, dict, list], Any]


class Normalizer:
    """Turns ``RawSpan`` into span-table rows (tuples in ``schema.SPAN_COLUMNS`` order)."""

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
        for sp in spans:
            row = self.row(sp, now)
            out.append(row)
            evals.extend(_evaluations(sp, row[4], now))
        return out, evals

    def row(self, sp: RawSpan, now: float) -> tuple:
        a = dict(sp.attributes)
        res = sp.resource
        meta: list = []  # lazily parsed ``metadata`` JSON, shared by the lookups of this span
        kind = _pop_first(a, KIND_KEYS)
        operation = a.get("gen_ai.operation.name")
        model = _pop_first(a, MODEL_KEYS)
        input_tokens = _int(_pop_first(a, INPUT_KEYS))
        output_tokens = _int(_pop_first(a, OUTPUT_KEYS))
        total_tokens = _int(_pop_first(a, TOTAL_KEYS))
        if total_tokens is None and (input_tokens is not None or output_tokens is not None):
            total_tokens = (input_tokens or 0) + (output_tokens or 0)
        kind = str(kind).upper() if kind else OPERATION_KINDS.get(
            str(operation), "LLM" if model or total_tokens is not None else "UNKNOWN")
        cost = _float(_pop_first(a, COST_TOTAL_KEYS))
        if cost is None:
            cost = self._cost_parts(a)
        if cost is None and model and (input_tokens or output_tokens):
            price = self._price(str(model))
            if price is not None:
                cost = ((input_tokens or 0) * price.input + (output_tokens or 0) * price.output) / 1_000_000
        error_type = _pop_first(a, ERROR_KEYS) or _exception_type(sp.events)
        status = STATUS[sp.status_code] if 0 <= sp.status_code <= 2 else "UNSET"
        if error_type and status != "OK":
            status = "ERROR"
        route = _resolve(self._route, a, res, meta) or ""
        fallback = _bool(a.pop("sluice.fallback_used", None)) or route == "fallback"
        cache_hit = _bool(a.pop("sluice.cache_hit", None)) or route == "cache"
        ttft = _float(a.pop("sluice.ttft_ms", None))
        if ttft is None:
            server_ttft = _float(a.pop("gen_ai.server.time_to_first_token", None))
            ttft = server_ttft * 1000.0 if server_ttft is not None else _first_token_ms(sp)
        is_request = not sp.parent_id or bool(_bool(a.pop("sluice.request", None)))
        row = (
            sp.trace_id, sp.span_id, sp.parent_id, _str(sp.name), _str(kind), sp.start_ns,
            max(sp.end_ns - sp.start_ns, 0) / 1e6, status, _str(error_type), _str(model),
            _str(_pop_first(a, PROVIDER_KEYS)), input_tokens, output_tokens, total_tokens, cost,
            _resolve(self._deployment, a, res, meta) or "", _resolve(self._release, a, res, meta) or "",
            route, _resolve(self._cohort, a, res, meta) or "default", fallback, cache_hit,
            _str(_pop_first(a, STEP_KEYS)), _str(_pop_first(a, TOOL_KEYS)), _str(_pop_first(a, SESSION_KEYS)),
            _str(_pop_first(a, USER_KEYS)), ttft, is_request, _str(res.get("service.name")),
            _attributes_json(a, sp), now,
        )
        return row

    def _cost_parts(self, a: dict) -> float | None:
        for keys in COST_PART_KEYS:
            parts = [_float(a.get(k)) for k in keys]
            if any(p is not None for p in parts):
                for k in keys:
                    a.pop(k, None)
                return sum(p or 0.0 for p in parts)
        return None

    def _price(self, model: str) -> Price | None:
        """Exact model name first, else the longest configured prefix (``gpt-4o`` prices ``gpt-4o-2024-08-06``)."""
        exact = self.settings.prices.get(model)
        if exact is not None:
            return exact
        for name, price in self._prices:
            if model.startswith(name):
                return price
        return None


def _lookup(name: str) -> Lookup:
    if name.startswith("resource."):
        key = name[len("resource."):]
        return lambda a, res, meta: res.get(key)
    meta_key = name[len("metadata."):] if name.startswith("metadata.") else None

    def find(a: dict, res: dict, meta: list) -> Any:
        if name in a:
            return a[name]
        if name in res:
            return res[name]
        if meta_key is not None:
            if not meta:
                meta.append(_parse_metadata(a.get("metadata")))
            return meta[0].get(meta_key)
        return None

    return find


def _resolve(lookups: list[Lookup], a: dict, res: dict, meta: list) -> str | None:
    for lookup in lookups:
        v = lookup(a, res, meta)
        if v not in (None, ""):
            return _str(orjson.dumps(v).decode() if isinstance(v, (dict, list)) else v)
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


def _pop_first(a: dict, keys: tuple[str, ...]) -> Any:
    """The first present key's value; every listed key is removed (they are aliases)."""
    found = None
    for k in keys:
        if k in a:
            v = a.pop(k)
            if found is None and v not in (None, ""):
                found = v
    return found


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
    return orjson.dumps(a, option=orjson.OPT_NON_STR_KEYS).decode()


def _evaluations(sp: RawSpan, kind: str, now: float) -> list[tuple]:
    """Evaluator spans (traceAI ``gen_ai.evaluation.*``, ``eval.*``) and OpenInference ``evaluations.<i>.*``."""
    a = sp.attributes
    out = []
    if kind == "EVALUATOR":
        name = a.get("gen_ai.evaluation.name") or a.get("eval.name") or sp.name
        score = _float(a.get("gen_ai.evaluation.score.value", a.get("eval.score")))
        label = a.get("gen_ai.evaluation.score.label", a.get("eval.label"))
        passed = _passed(a.get("sluice.eval.passed", a.get("eval.passed")), label)
        out.append((sp.trace_id, sp.span_id, str(name), passed, score, _str(label), "span", now))
    i = 0
    while f"evaluations.{i}.evaluation.name" in a:
        p = f"evaluations.{i}.evaluation."
        label = a.get(p + "label")
        out.append((sp.trace_id, sp.span_id, str(a[p + "name"]), _passed(None, label), _float(a.get(p + "score")),
                    _str(label), "span", now))
        i += 1
    return out


def _passed(explicit: Any, label: Any) -> bool | None:
    b = _bool(explicit)
    if b is not None:
        return b
    text = str(label).strip().lower() if label is not None else ""
    return True if text in PASS_LABELS else False if text in FAIL_LABELS else None


def _int(v: Any) -> int | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


def _float(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


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
