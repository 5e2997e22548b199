"""One row of the release contract, and the small types it is made of."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

ROLES = ("system", "user", "assistant", "tool", "developer")


class ToolCall(BaseModel):
    """A tool call made or expected: a name and JSON arguments."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str
    content: str | None = None

    @field_validator("role")
    @classmethod
    def _known_role(cls, v: str) -> str:
        if v not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        return v


class ContextDoc(BaseModel):
    """A retrieved document. A bare string is accepted as ``{"text": ...}``."""

    model_config = ConfigDict(extra="forbid")
    text: str
    id: str | None = None
    score: float | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, v: Any) -> Any:
        return {"text": v} if isinstance(v, str) else v

    def __str__(self) -> str:
        # templates may write {{ doc }} or {{ doc.text }}: both give the text
        return self.text


class Row(BaseModel):
    """A representative case: what goes in, what came back from retrieval, what should come out.

    ``input`` is either a chat (a list of messages) or template variables for the release's
    prompt template.
    """

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1)
    input: list[Message] | dict[str, Any]
    context: list[ContextDoc] = Field(default_factory=list)
    expected_answer: str | None = None
    expected_tool: ToolCall | None = None
    policy_labels: list[str] = Field(default_factory=list)
    cohort: str = "default"
    trace_id: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("id", mode="before")
    @classmethod
    def _id_as_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("expected_answer", "trace_id", mode="before")
    @classmethod
    def _blank_is_none(cls, v: Any) -> Any:
        # an empty cell means "not given"; keeping "" would make CSV round trips change the digest
        return None if v == "" else v

    @field_validator("cohort", mode="before")
    @classmethod
    def _default_cohort(cls, v: Any) -> Any:
        return "default" if v in (None, "") else v

    @field_validator("input")
    @classmethod
    def _non_empty(cls, v: Any) -> Any:
        if isinstance(v, list) and not v:
            raise ValueError("must hold at least one message")
        return v

    def last_user_text(self) -> str:
        """The question the row asks, for evaluators that need the query as text."""
        if isinstance(self.input, dict):
            for key in ("question", "query", "input", "message", "prompt"):
                if isinstance(self.input.get(key), str):
                    return self.input[key]
            return " ".join(str(v) for v in self.input.values() if isinstance(v, str))
        for m in reversed(self.input):
            if m.role == "user" and m.content:
                return m.content
        return ""

    def context_texts(self) -> list[str]:
        return [d.text for d in self.context]
