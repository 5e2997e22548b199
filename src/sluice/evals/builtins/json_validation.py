"""JSON validation: the response parses as JSON and, given a schema, conforms to it.

Score 1 = valid (and schema-conformant), 0.5 = valid JSON that breaks the schema, 0 = not JSON.
Passes at 1. A fenced ```json block is accepted when ``allow_fenced`` (default); ``extract`` also
accepts the first JSON value embedded in prose.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

from sluice.errors import ConfigError
from sluice.evals.base import BaseEvaluator
from sluice.evals.registry import register

_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n(.*?)\n?\s*```\s*$", re.S)
MAX_ERRORS = 10


@register("json_validation")
class JsonValidation(BaseEvaluator):
    """Response is JSON and conforms to an optional JSON Schema."""

    version = "1"
    requires = ("response",)
    default_threshold = 1.0

    def __init__(self, *, schema: dict[str, Any] | None = None, allow_fenced: bool = True,
                 extract: bool = False, threshold: float | None = None):
        super().__init__(threshold=threshold)
        self.schema = schema
        self.allow_fenced = allow_fenced
        self.extract = extract
        self.validator = None
        if schema is not None:
            try:
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise ConfigError(f"evaluator 'json_validation': the schema is not a valid JSON "
                                  f"Schema: {exc.message}") from None
            self.validator = cls(schema, format_checker=cls.FORMAT_CHECKER)

    def _parse(self, text: str) -> tuple[Any, str | None]:
        body = text
        if self.allow_fenced:
            m = _FENCE.match(text)
            if m:
                body = m.group(1)
        try:
            return json.loads(body), None
        except json.JSONDecodeError as exc:
            err = f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        if self.extract:
            decoder = json.JSONDecoder()
            for m in re.finditer(r"[\[{]", text):
                try:
                    return decoder.raw_decode(text[m.start():])[0], None
                except json.JSONDecodeError:
                    continue
        return None, err

    def score(self, fields: dict[str, Any]) -> Any:
        value, err = self._parse(fields["response"] or "")
        if err:
            return self.result(0.0, err, {"valid_json": False})
        if self.validator is None:
            return self.result(1.0, "valid JSON", {"valid_json": True})
        errors = sorted(self.validator.iter_errors(value), key=lambda e: list(e.absolute_path))
        if not errors:
            return self.result(1.0, "valid JSON, conforms to the schema",
                               {"valid_json": True, "schema_valid": True})
        listed = [{"path": "/" + "/".join(str(p) for p in e.absolute_path), "message": e.message}
                  for e in errors[:MAX_ERRORS]]
        return self.result(0.5, f"{len(errors)} schema error(s); first at {listed[0]['path']}: "
                                f"{listed[0]['message'][:120]}",
                           {"valid_json": True, "schema_valid": False, "errors": listed,
                            "error_count": len(errors)})
