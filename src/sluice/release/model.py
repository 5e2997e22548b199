"""The release bundle: everything that changes how an LLM system answers, in one validated model.

Unknown keys are errors (``extra="forbid"``) so a typo such as ``temprature`` is caught at load
time instead of silently falling back to a default. Secrets never appear here: a component names
the environment variable holding its key (``api_key_env``).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
ENV_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SamplingParams(Strict):
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    stop: list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    response_format: dict[str, Any] | None = None

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_list(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    def as_request(self) -> dict[str, Any]:
        """The params as OpenAI request fields, unset ones left out."""
        return self.model_dump(exclude_none=True)


class ModelRef(Strict):
    """One model behind one provider endpoint."""

    provider: str = "openai"  # openai (any OpenAI-compatible endpoint) | scripted
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    script: str | None = None  # scripted provider: path to its script file

    @field_validator("api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not ENV_RE.match(v):
            raise ValueError("must be the NAME of an environment variable, not a key")
        return v


class Component(ModelRef):
    """A part of the release that calls a model: responder, planner, checker, ..."""

    params: SamplingParams = Field(default_factory=SamplingParams)
    system_prompt: str | None = None  # inline text, or a file via system_prompt_file
    system_prompt_file: str | None = None
    prompt: str | None = None  # Jinja2 template file rendering the user message
    context_budget: int | None = Field(default=None, gt=0, description="tokens of context kept")
    fallbacks: list[ModelRef] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_system_prompt(self) -> "Component":
        if self.system_prompt is not None and self.system_prompt_file is not None:
            raise ValueError("give system_prompt or system_prompt_file, not both")
        return self


class Retriever(Strict):
    index: str
    top_k: int = Field(default=5, gt=0)
    params: dict[str, Any] = Field(default_factory=dict)


class Tool(Strict):
    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None  # JSON schema, inline
    parameters_file: str | None = None  # or in a file of the bundle

    @model_validator(mode="after")
    def _one_schema(self) -> "Tool":
        if self.parameters is not None and self.parameters_file is not None:
            raise ValueError("give parameters or parameters_file, not both")
        return self


class Guardrail(Strict):
    name: str
    type: Literal["json_schema", "blocked_patterns", "pii", "evaluator"]
    action: Literal["block", "repair", "log"] = "block"
    patterns: list[str] = Field(default_factory=list)
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    schema_file: str | None = None
    evaluator: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    threshold: float | None = None
    inline: bool = True
    message: str | None = None  # the safe response a block returns

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("patterns")
    @classmethod
    def _patterns_compile(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as e:
                raise ValueError(f"pattern {p!r} is not a valid regular expression: {e}") from None
        return v

    @model_validator(mode="after")
    def _needs(self) -> "Guardrail":
        if self.schema_ is not None and self.schema_file is not None:
            raise ValueError("give schema or schema_file, not both")
        if self.type == "json_schema" and self.schema_ is None and self.schema_file is None:
            raise ValueError("a json_schema guardrail needs schema or schema_file")
        if self.type == "blocked_patterns" and not self.patterns:
            raise ValueError("a blocked_patterns guardrail needs patterns")
        if self.type == "evaluator" and not self.evaluator:
            raise ValueError("an evaluator guardrail needs evaluator")
        return self


class Target(Strict):
    """How the release is executed on a dataset row."""

    type: Literal["chat", "http", "python"] = "chat"
    url: str | None = None  # http: the app endpoint that receives the row
    headers_env: dict[str, str] = Field(default_factory=dict)  # http: header -> env var name
    function: str | None = None  # python: "module:function"
    timeout_s: float = Field(default=60.0, gt=0)

    @field_validator("headers_env")
    @classmethod
    def _env_names(cls, v: dict[str, str]) -> dict[str, str]:
        for header, env in v.items():
            if not ENV_RE.match(env):
                raise ValueError(f"header {header!r} must map to the NAME of an environment variable")
        return v

    @model_validator(mode="after")
    def _needs(self) -> "Target":
        if self.type == "http" and not self.url:
            raise ValueError("an http target needs url")
        if self.type == "python" and (not self.function or ":" not in self.function):
            raise ValueError("a python target needs function: 'module:function'")
        return self


class Release(Strict):
    name: str
    version: str
    description: str = ""
    target: Target = Field(default_factory=Target)
    components: dict[str, Component] = Field(default_factory=dict)
    retriever: Retriever | None = None
    tools: list[Tool] = Field(default_factory=list)
    guardrails: list[Guardrail] = Field(default_factory=list)
    cost: dict[str, float] = Field(default_factory=dict)  # per 1M tokens: input, output
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not NAME_RE.match(v):
            raise ValueError("use letters, digits, '.', '_' or '-'")
        return v

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @model_validator(mode="after")
    def _responder(self) -> "Release":
        if self.target.type == "chat" and "responder" not in self.components:
            raise ValueError("a chat release needs components.responder")
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def responder(self) -> Component:
        return self.components["responder"]
