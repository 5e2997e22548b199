"""Turn a dataset row into the chat messages a release's component sends to its model.

Rules (docs/releases.md, "Prompt rendering"):

* Row input as **template variables** (a mapping): the component's prompt template is rendered with
  those variables plus ``context`` (the kept context documents) and ``row``; the result is the one
  user message. A release without a template cannot take such rows.
* Row input as **messages**: they are used as they are. If the component has a template it renders
  the *last user message* (variables ``question``/``input`` = its text, ``messages`` = the turns
  before it, ``context``, ``row``) and replaces that message's content.
* The release's system prompt, when it has one, replaces any leading system messages of the row:
  rows captured from production carry the production system prompt, and replaying a candidate
  with the baseline's system prompt would hide exactly the change under test.
* ``context_budget`` (tokens) keeps context documents in rank order (the row's order) while they
  fit; the first one that does not fit and every one after it are dropped and counted.

Templates use StrictUndefined: a misspelt variable is an error naming template, line and variable,
never a silently empty string.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from sluice.dataset.row import ContextDoc, Row
from sluice.errors import ConfigError, DataError, Location
from sluice.release.bundle import ReleaseBundle
from sluice.release.tokens import count_tokens

RESERVED_VARIABLES = ("context", "row")


class TemplateError(ConfigError):
    """A prompt template failed on a row (undefined variable or attribute, bad filter use)."""


@dataclass(frozen=True)
class RenderedPrompt:
    messages: list[dict[str, Any]]
    context: list[ContextDoc]  # the documents kept within the budget (what the template saw)
    dropped_docs: int  # documents cut by context_budget


def render_messages(bundle: ReleaseBundle, component: str, row: Row) -> RenderedPrompt:
    comp = bundle.component(component)
    kept, dropped = fit_context(row.context, comp.context_budget, comp.model)
    system = bundle.system_prompt(component)
    template = comp.prompt
    if isinstance(row.input, dict):
        if template is None:
            raise DataError(f"input is template variables but component '{component}' of {bundle.ref} has no "
                            "prompt template (give messages, or add 'prompt:' to the component)",
                            Location(row=row.id, field="input"))
        clash = [k for k in RESERVED_VARIABLES if k in row.input]
        if clash:
            raise DataError(f"'{clash[0]}' is a reserved template variable; rename it in the row",
                            Location(row=row.id, field=f"input.{clash[0]}"))
        text = _render(template, bundle.text(template), {**row.input, "context": kept, "row": row}, row.id)
        messages = [{"role": "user", "content": text}]
    else:
        messages = [m.model_dump(exclude_none=True) for m in row.input]
        if template is not None:
            messages = _render_last_user(messages, template, bundle.text(template), kept, row)
    if system is not None:
        while messages and messages[0]["role"] == "system":
            messages.pop(0)
        messages.insert(0, {"role": "system", "content": system})
    return RenderedPrompt(messages=messages, context=kept, dropped_docs=dropped)


def fit_context(docs: list[ContextDoc], budget: int | None, model: str | None = None
                ) -> tuple[list[ContextDoc], int]:
    """(kept, dropped count): the longest rank-order prefix within ``budget`` tokens.

    A BPE token is at least one UTF-8 byte, so documents whose bytes fit the budget fit without
    counting: most rows never load a tokenizer (its tables cost 38–74 MB resident and CPU per row).
    """
    texts = [d.text for d in docs]
    if budget is None or sum(len(t.encode()) for t in texts) <= budget:
        return list(docs), 0
    used = 0
    for i, n in enumerate(count_tokens(texts, model)):
        if used + n > budget:
            return list(docs[:i]), len(docs) - i
        used += n
    return list(docs), 0


def _render_last_user(messages: list[dict[str, Any]], rel: str, source: str, kept: list[ContextDoc],
                      row: Row) -> list[dict[str, Any]]:
    last = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last is None:
        raise DataError(f"the prompt template '{rel}' renders the last user message, but the row has none",
                        Location(row=row.id, field="input"))
    question = messages[last].get("content") or ""
    variables = {"question": question, "input": question, "messages": messages[:last], "context": kept, "row": row}
    out = [dict(m) for m in messages]
    out[last]["content"] = _render(rel, source, variables, row.id)
    return out


def _render(rel: str, source: str, variables: dict[str, Any], row_id: str) -> str:
    try:
        return _compiled(rel, source).render(variables)
    except jinja2.UndefinedError as e:
        given = ", ".join(sorted(variables)) or "none"
        raise TemplateError(f"{e.message} (variables available: {given})",
                            Location(file=rel, line=_template_line(e, rel), row=row_id)) from None
    except jinja2.TemplateError as e:
        raise TemplateError(f"template failed: {e}", Location(file=rel, line=_template_line(e, rel), row=row_id)) from None


@lru_cache(maxsize=256)
def _compiled(rel: str, source: str) -> jinja2.Template:
    """Compile once per (path, content); ``filename=rel`` lets errors point at the template line."""
    env = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    code = env.compile(source, name=rel, filename=rel)
    return env.template_class.from_code(env, code, env.make_globals(None), None)


def _template_line(error: BaseException, rel: str) -> int | None:
    line = None
    for frame, lineno in traceback.walk_tb(error.__traceback__):
        if frame.f_code.co_filename == rel:
            line = lineno
    return line
