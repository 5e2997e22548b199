"""What a stored release is made of, component by component, as an audit shows it.

Pure: a ``ReleaseRecord`` (its normalised manifest and file digests), optionally the loaded
bundle for the system prompt texts, and the guardrail outcome a span recorded.
"""

from __future__ import annotations

from typing import Any

from sluice.digest import digest_of, sha256_bytes

GUARDRAIL_ATTRIBUTE = "sluice.guardrail"  # "pass" or "<action>:<name>[,<name>]" (gateway spans)


def describe_release(record: Any, bundle: Any | None = None) -> dict[str, Any]:
    """Digest, label and every component of a release, with the digests of its prompts."""
    m = record.manifest
    files = record.files or {}
    components = {}
    for name, comp in (m.get("components") or {}).items():
        components[name] = _component(name, comp, files, bundle)
    tools = [{"name": t.get("name"), "description": t.get("description", ""),
              "schema_digest": files.get(t["parameters_file"]) if t.get("parameters_file")
              else digest_of(t["parameters"]) if t.get("parameters") is not None else None}
             for t in m.get("tools") or []]
    retriever = m.get("retriever")
    return {
        "digest": record.digest, "ref": f"{record.name}@{record.version}", "registered_at": record.created_at,
        "source": record.source, "target": (m.get("target") or {}).get("type", "chat"),
        "components": components,
        "retriever": {"index": retriever.get("index"), "top_k": retriever.get("top_k"),
                      "params": retriever.get("params") or {}} if retriever else None,
        "tools": tools,
        "guardrails": [{k: g[k] for k in ("name", "type", "action", "threshold", "evaluator", "inline") if k in g}
                       for g in m.get("guardrails") or []],
    }


def _component(name: str, comp: dict[str, Any], files: dict[str, str], bundle: Any | None) -> dict[str, Any]:
    prompt = comp.get("prompt")
    system_digest, system_source = None, None
    if comp.get("system_prompt_file"):
        system_source = comp["system_prompt_file"]
        system_digest = files.get(system_source)
        if bundle is not None:  # what is sent: the text without the editor's final newline
            system_digest = sha256_bytes((bundle.system_prompt(name) or "").encode())
    elif comp.get("system_prompt") is not None:
        system_source, system_digest = "inline", sha256_bytes(comp["system_prompt"].encode())
    return {
        "provider": comp.get("provider", "openai"), "model": comp.get("model"), "base_url": comp.get("base_url"),
        "params": comp.get("params") or {},
        "prompt_template": {"path": prompt, "digest": files.get(prompt)} if prompt else None,
        "system_prompt": {"source": system_source, "digest": system_digest} if system_digest else None,
        "context_budget": comp.get("context_budget"),
        "fallbacks": [{"provider": f.get("provider", "openai"), "model": f.get("model"), "base_url": f.get("base_url")}
                      for f in comp.get("fallbacks") or []],
    }


def guardrail_outcomes(guardrails: list[dict[str, Any]], recorded: Any) -> tuple[str, list[dict[str, Any]]]:
    """Each guardrail's outcome on this answer from the span's ``sluice.guardrail`` attribute:
    ``pass``, its action (``block``, ``repair``, ``log``) when it fired, or ``not recorded``."""
    if not isinstance(recorded, str) or not recorded:
        return "not recorded", [dict(g, outcome="not recorded") for g in guardrails]
    fired: set[str] = set()
    action = "pass"
    if recorded != "pass" and ":" in recorded:
        action, _, names = recorded.partition(":")
        fired = {n.strip() for n in names.split(",") if n.strip()}
    return recorded, [dict(g, outcome=action if g.get("name") in fired else "pass") for g in guardrails]
