"""Named evaluators, built from plain specs, with their construction arguments recorded.

Like inspect_ai's ``registry_tag``, ``register`` wraps a class so every instance remembers the
arguments it was built with (defaults filled in). ``evaluator_spec(ev)`` returns them as
``{"name", "version", "args"}``, which is stored with a run; ``build(spec)`` turns that record back
into an identical evaluator, so a past run can be replayed and its cache keys trusted.

``evaluate_row`` / ``evaluate_rows`` map a dataset row and the target's output onto evaluator
fields; an exception inside an evaluator becomes an error result, never a crashed run.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sluice.errors import ConfigError, Location
from sluice.evals.base import Evaluator, safe_evaluate
from sluice.evals.result import EvalResult

if TYPE_CHECKING:  # runtime import would be circular: runner.record imports evals.result
    from sluice.dataset.row import Row
    from sluice.runner.record import RowOutput

_REGISTRY: dict[str, type] = {}
T = TypeVar("T", bound=type)


def register(name: str):
    """Class decorator: register under ``name`` and record each instance's arguments."""

    def deco(cls: T) -> T:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"evaluator name '{name}' is already registered "
                             f"by {_REGISTRY[name].__qualname__}")
        original = cls.__init__
        signature = inspect.signature(original)

        @functools.wraps(original)
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            bound = signature.bind(self, *args, **kwargs)
            bound.apply_defaults()
            recorded: dict[str, Any] = {}
            for pname, value in list(bound.arguments.items())[1:]:
                kind = signature.parameters[pname].kind
                if kind is inspect.Parameter.VAR_KEYWORD:
                    recorded.update(value)
                elif kind is not inspect.Parameter.VAR_POSITIONAL:
                    recorded[pname] = value
            # The outermost registered class runs last, so its view of the arguments wins.
            self._spec_args = recorded
            self._spec_name = name

        cls.__init__ = __init__
        cls.name = name
        _REGISTRY[name] = cls
        return cls

    return deco


def _load_builtins() -> None:
    import sluice.evals.builtins  # noqa: F401 - registers the built-in evaluators


def list_evaluators() -> list[dict[str, str]]:
    """Every registered evaluator: name, version and the first line of its docstring."""
    _load_builtins()
    return [{"name": n, "version": str(getattr(c, "version", "")),
             "description": (inspect.getdoc(c) or "").split("\n")[0]}
            for n, c in sorted(_REGISTRY.items())]


def evaluator_class(name: str) -> type:
    _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown evaluator '{name}'; known: {', '.join(sorted(_REGISTRY))}",
                          Location(field="evaluators"))
    return _REGISTRY[name]


def build(spec: str | Mapping[str, Any]) -> Evaluator:
    """An evaluator from ``"name"``, ``{"name", "args": {...}}`` or ``{"name", **args}``.

    A spec recorded by ``evaluator_spec`` also carries ``version``; building it with code of
    another version is refused, because its scores would not be comparable. ``as`` gives the
    evaluator a distinct label (two ``regex`` checks in one gate).
    """
    if isinstance(spec, str):
        name, args, label, version = spec, {}, None, None
    elif isinstance(spec, Mapping):
        if not isinstance(spec.get("name"), str):
            raise ConfigError("an evaluator spec needs a 'name'", Location(field="evaluators"))
        name, label, version = spec["name"], spec.get("as"), spec.get("version")
        rest = {k: v for k, v in spec.items() if k not in ("name", "as", "version", "args")}
        if "args" in spec:
            if rest:
                raise ConfigError(f"evaluator '{name}': give arguments under 'args' or inline, "
                                  f"not both (inline: {', '.join(sorted(rest))})",
                                  Location(field=f"evaluators.{name}"))
            args = spec["args"] or {}
            if not isinstance(args, Mapping):
                raise ConfigError(f"evaluator '{name}': 'args' must be a mapping",
                                  Location(field=f"evaluators.{name}.args"))
        else:
            args = rest
    else:
        raise ConfigError(f"an evaluator spec must be a name or a mapping, got "
                          f"{type(spec).__name__}", Location(field="evaluators"))
    cls = evaluator_class(name)
    if version is not None and str(version) != str(cls.version):
        raise ConfigError(f"evaluator '{name}': the spec records version {version} but this "
                          f"Sluice has version {cls.version}; its scores would not be comparable",
                          Location(field=f"evaluators.{name}.version"))
    try:
        ev = cls(**dict(args))
    except ConfigError as exc:
        if f"'{name}'" in exc.message:
            raise
        raise ConfigError(f"evaluator '{name}': {exc.message}",
                          Location(field=f"evaluators.{name}")) from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"evaluator '{name}': bad arguments: {exc}",
                          Location(field=f"evaluators.{name}.args")) from None
    if label:
        ev.label = str(label)
    return ev


def evaluator_spec(ev: Evaluator) -> dict[str, Any]:
    """``{"name", "version", "args"}`` (plus ``as`` when labelled): enough to rebuild ``ev``."""
    spec: dict[str, Any] = {"name": getattr(ev, "_spec_name", ev.name), "version": str(ev.version),
                            "args": dict(getattr(ev, "_spec_args", {}))}
    if label_of(ev) != spec["name"]:
        spec["as"] = label_of(ev)
    return spec


def label_of(ev: Evaluator) -> str:
    """The key an evaluator's results are stored under: its label, else its name."""
    return getattr(ev, "label", None) or ev.name


# --- rows --------------------------------------------------------------------------------------

def row_fields(row: Row, output: RowOutput, tools: Sequence[Any] | None = None) -> dict[str, Any]:
    """The evaluator fields for one row: the target's output first, the row's data otherwise."""
    context = output.context if output.context is not None else row.context
    return {
        "response": output.output,
        "context": [d.text for d in context],
        "query": row.last_user_text(),
        "expected_answer": row.expected_answer,
        "expected_tool": row.expected_tool,
        "tool_calls": list(output.tool_calls),
        "tools": list(tools) if tools else None,
        "latency_ms": output.latency_ms,
        "cost": output.cost,
        "usage": output.usage.model_dump(),
        "policy_labels": list(row.policy_labels),
        "metadata": dict(row.metadata),
    }


def _target_failed(ev: Evaluator, output: RowOutput) -> EvalResult:
    msg = f"target failed on this row ({output.error_kind or 'error'}): {output.error}"
    return EvalResult(score=0.0, passed=False, reason=msg, evaluator=ev.name,
                      version=str(ev.version), error=msg,
                      details={"target_error": True, "error_kind": output.error_kind})


def evaluate_row(ev: Evaluator, row: Row, output: RowOutput,
                 tools: Sequence[Any] | None = None) -> EvalResult:
    """Score one row. A target error or an evaluator exception gives an error result."""
    fields = row_fields(row, output, tools)
    if output.error is not None:
        na = getattr(ev, "not_applicable", None)
        return (na(fields) if na else None) or _target_failed(ev, output)
    return safe_evaluate(ev, fields)


def evaluate_rows(evaluators: Sequence[Evaluator], pairs: Iterable[tuple[Row, RowOutput]],
                  tools: Sequence[Any] | None = None,
                  chunk_size: int = 256) -> list[dict[str, EvalResult]]:
    """Score many rows with many evaluators, in batches, keyed by ``label_of(ev)``.

    Batch-aware evaluators (``evaluate_batch``) see ``chunk_size`` rows at a time, so embedding
    evaluators embed a chunk's texts together. Rows whose target failed get error results.
    """
    pairs = list(pairs)
    labels = [label_of(ev) for ev in evaluators]
    if len(set(labels)) != len(labels):
        dup = sorted({lb for lb in labels if labels.count(lb) > 1})
        raise ConfigError(f"two evaluators share the label {', '.join(dup)}; give one an 'as'",
                          Location(field="evaluators"))
    results: list[dict[str, EvalResult]] = [{} for _ in pairs]
    ok = [i for i, (_, out) in enumerate(pairs) if out.error is None]
    fields = {i: row_fields(pairs[i][0], pairs[i][1], tools) for i in ok}
    for ev, label in zip(evaluators, labels):
        for i, (row, out) in enumerate(pairs):
            if out.error is not None:
                na = getattr(ev, "not_applicable", None)
                skipped = na(row_fields(row, out, tools)) if na else None
                results[i][label] = skipped or _target_failed(ev, out)
        for start in range(0, len(ok), chunk_size):
            idx = ok[start:start + chunk_size]
            batch = [fields[i] for i in idx]
            scored = _score_batch(ev, batch)
            for i, res in zip(idx, scored):
                results[i][label] = res
    return results


def _score_batch(ev: Evaluator, batch: list[dict[str, Any]]) -> list[EvalResult]:
    batch_fn = getattr(ev, "evaluate_batch", None)
    if batch_fn is not None:
        try:
            scored = batch_fn(batch)
            if len(scored) == len(batch):
                return list(scored)
        except Exception:  # noqa: BLE001 - fall back to one row at a time, each caught
            pass
    return [safe_evaluate(ev, f) for f in batch]
