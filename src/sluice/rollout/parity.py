"""Config parity: does the canary in production run the release that was gated?

The gateway builds every request from the release, so its spans match by construction. An app
that calls its model itself and only sends traces may not: it can send a temperature, a prompt, a
tool list or a context budget of its own while its spans claim the candidate release. Then the
gate's verdict says nothing about what users get, and the rollout holds, naming the field.

Only fields that both the release sets and the span reports are compared (a span that says
nothing about its temperature is no evidence either way). Recognised span attributes: OpenTelemetry
GenAI ``gen_ai.request.*``, OpenInference ``llm.invocation_parameters`` (JSON) and ``llm.tools.<i>``,
and Sluice's ``sluice.prompt_digest``, ``sluice.tools`` and ``sluice.context_budget``.
"""

from __future__ import annotations

from typing import Any

import orjson

SAMPLING = ("temperature", "top_p", "max_tokens", "seed", "stop")
_GENAI = {"temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p",
          "max_tokens": "gen_ai.request.max_tokens", "seed": "gen_ai.request.seed",
          "stop": "gen_ai.request.stop_sequences"}


def expected_of(manifest: dict[str, Any], files: dict[str, str]) -> dict[str, Any]:
    """What a span of this release should show: the responder's (or only component's) settings."""
    comps = manifest.get("components") or {}
    comp = comps.get("responder") or (next(iter(comps.values())) if len(comps) == 1 else None) or {}
    out: dict[str, Any] = {}
    for k in SAMPLING:
        v = (comp.get("params") or {}).get(k)
        if v is not None:
            out[k] = v
    if comp.get("context_budget") is not None:
        out["context_budget"] = comp["context_budget"]
    prompt = comp.get("prompt")
    if prompt and prompt in files:
        out["prompt_digest"] = files[prompt]
    tools = manifest.get("tools") or []
    if tools:
        out["tools"] = sorted(t.get("name", "") for t in tools)
    return out


def observed_of(attrs: dict[str, Any]) -> dict[str, Any]:
    """The same fields as a span reports them."""
    out: dict[str, Any] = {}
    inv = attrs.get("llm.invocation_parameters")
    if isinstance(inv, str):
        try:
            inv = orjson.loads(inv)
        except orjson.JSONDecodeError:
            inv = None
    if isinstance(inv, dict):
        for k in SAMPLING:
            if inv.get(k) is not None:
                out[k] = inv[k]
    for k, key in _GENAI.items():
        if attrs.get(key) is not None:
            out[k] = attrs[key]
    if attrs.get("sluice.context_budget") is not None:
        out["context_budget"] = attrs["sluice.context_budget"]
    if attrs.get("sluice.prompt_digest"):
        out["prompt_digest"] = str(attrs["sluice.prompt_digest"])
    tools = _tool_names(attrs)
    if tools is not None:
        out["tools"] = tools
    return out


def _tool_names(attrs: dict[str, Any]) -> list[str] | None:
    if attrs.get("sluice.tools") is not None:
        v = attrs["sluice.tools"]
        return sorted(v if isinstance(v, list) else [t.strip() for t in str(v).split(",") if t.strip()])
    names, i = [], 0
    while f"llm.tools.{i}.tool.json_schema" in attrs or f"llm.tools.{i}.tool.name" in attrs:
        name = attrs.get(f"llm.tools.{i}.tool.name")
        if name is None:
            try:
                schema = orjson.loads(attrs[f"llm.tools.{i}.tool.json_schema"])
                name = (schema.get("function") or schema).get("name")
            except (orjson.JSONDecodeError, AttributeError, TypeError):
                name = None
        names.append(str(name or "?"))
        i += 1
    return sorted(names) if i else None


def _same(field: str, want: Any, got: Any) -> bool:
    if field in ("temperature", "top_p"):
        try:
            return abs(float(want) - float(got)) < 1e-9
        except (TypeError, ValueError):
            return False
    if field in ("max_tokens", "seed", "context_budget"):
        try:
            return int(want) == int(got)
        except (TypeError, ValueError):
            return False
    if field == "stop":
        return sorted(want if isinstance(want, list) else [want]) == sorted(got if isinstance(got, list) else [got])
    if field == "prompt_digest":
        return str(got).removeprefix("sha256:") == str(want).removeprefix("sha256:")
    return want == got


def mismatches(expected: dict[str, Any], spans_attrs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per field that differs on any span: field, gated value, value seen, spans differing."""
    seen: dict[str, dict[str, Any]] = {}
    for attrs in spans_attrs:
        obs = observed_of(attrs)
        for field, want in expected.items():
            if field in obs and not _same(field, want, obs[field]):
                entry = seen.setdefault(field, {"field": field, "gated": want, "seen": obs[field], "spans": 0})
                entry["spans"] += 1
    return sorted(seen.values(), key=lambda e: e["field"])


def check(store: Any, deployment: str, candidate_names: frozenset[str], manifest: dict[str, Any],
          files: dict[str, str], since_ns: int, until_ns: int, limit: int = 200) -> list[dict[str, Any]]:
    """Mismatches on the canary's app-sent LLM spans in the window (blocking: call from a worker thread)."""
    expected = expected_of(manifest, files)
    if not expected or not candidate_names:
        return []
    marks = ", ".join("?" * len(candidate_names))
    rows = store.db.query(
        f"SELECT attributes FROM spans WHERE deployment = ? AND start_ns >= ? AND start_ns < ? AND release IN ({marks}) "
        "AND kind = 'LLM' AND (service IS NULL OR service <> 'sluice-gateway') LIMIT ?",
        [deployment, since_ns, until_ns, *sorted(candidate_names), limit])
    attrs = []
    for (text,) in rows:
        try:
            a = orjson.loads(text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(a, dict):
            attrs.append(a)
    return mismatches(expected, attrs)
