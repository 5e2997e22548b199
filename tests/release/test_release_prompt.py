from __future__ import annotations

import pytest

from release_fixtures import BASE_YAML
from sluice.dataset.row import Row
from sluice.errors import DataError
from sluice.release.loader import load_release
from sluice.release.prompt import TemplateError, fit_context, render_messages
from sluice.release.tokens import count_tokens, encoding_for, estimate_tokens

SYSTEM = "You are a careful support agent."


def test_token_counts_are_real_bpe_counts():
    # known cl100k_base / o200k_base counts (identical to tiktoken)
    assert count_tokens(["hello world", "how many tokens?"]) == [2, 4]
    assert encoding_for("gpt-4o-mini") == "o200k_base" and encoding_for("llama-3") == "cl100k_base"
    assert encoding_for("openai/gpt-5") == "o200k_base"
    assert estimate_tokens("abcdefgh") == 2 and estimate_tokens("abcdefghi") == 3


@pytest.mark.parametrize("budget,kept,dropped", [
    (None, 3, 0), (8, 3, 0), (7, 2, 1), (4, 2, 1), (3, 1, 2), (1, 0, 3),
])
def test_context_budget_keeps_a_rank_order_prefix(budget, kept, dropped):
    # 2 + 2 + 4 cl100k tokens
    docs = Row(id="r", input={"q": "x"}, context=["hello world", "hello world", "how many tokens?"]).context
    out, n_dropped = fit_context(docs, budget)
    assert (len(out), n_dropped) == (kept, dropped)
    assert out == docs[:kept]


def test_context_within_the_budget_in_bytes_is_never_tokenised(monkeypatch):
    import sluice.release.prompt as prompt

    def refuse(*a, **k):
        raise AssertionError("tokenizer called")

    monkeypatch.setattr(prompt, "count_tokens", refuse)
    docs = Row(id="r", input={"q": "x"}, context=["héllo", "world"]).context
    assert fit_context(docs, 11) == (docs, 0)  # 6 + 5 bytes
    with pytest.raises(AssertionError):
        fit_context(docs, 10)


def test_template_variables_render_with_context_and_system_prompt(make_release):
    bundle = load_release(make_release())
    row = Row(id="q1", input={"question": "Where is my order?"}, context=["Ships in 2 days.", "Refunds take 5 days."])
    out = render_messages(bundle, "responder", row)
    assert out.messages == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "[1] Ships in 2 days.\n[2] Refunds take 5 days.\nQuestion: Where is my order?"},
    ]
    assert out.dropped_docs == 0 and len(out.context) == 2


def test_budget_drops_are_reported_and_hidden_from_the_template(make_release):
    yaml = BASE_YAML.replace("    prompt: prompts/answer.j2", "    prompt: prompts/answer.j2\n    context_budget: 4")
    bundle = load_release(make_release(yaml))
    row = Row(id="q1", input={"question": "?"}, context=["hello world", "hello world", "how many tokens?"])
    out = render_messages(bundle, "responder", row)
    assert out.dropped_docs == 1
    assert out.messages[1]["content"] == "[1] hello world\n[2] hello world\nQuestion: ?"


def test_misspelt_variable_names_template_line_row_and_variable(make_release):
    bundle = load_release(make_release())
    with pytest.raises(TemplateError) as exc:
        render_messages(bundle, "responder", Row(id="q7", input={"qestion": "hi"}))
    assert str(exc.value) == ("prompts/answer.j2:2, row q7: 'question' is undefined "
                              "(variables available: context, qestion, row)")


def test_bad_attribute_is_an_error_too(make_release):
    bundle = load_release(make_release(files={"prompts/answer.j2": "{{ question }}\n{{ context[0].txt }}"}))
    with pytest.raises(TemplateError, match=r"prompts/answer.j2:2, row q1: .*has no attribute 'txt'"):
        render_messages(bundle, "responder", Row(id="q1", input={"question": "x"}, context=["d"]))


def test_messages_input_replaces_row_system_prompt_and_renders_last_user_turn(make_release):
    bundle = load_release(make_release())
    row = Row(id="c1", context=["Doc."], input=[
        {"role": "system", "content": "production system prompt"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "second"},
    ])
    messages = render_messages(bundle, "responder", row).messages
    assert messages == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "reply"},
        {"role": "user", "content": "[1] Doc.\nQuestion: second"},
    ]


def test_messages_input_without_template_or_system_prompt_passes_through(make_release):
    yaml = "name: plain\nversion: '1'\ncomponents:\n  responder:\n    model: m\n"
    bundle = load_release(make_release(yaml, files={}))
    row = Row(id="c1", input=[{"role": "system", "content": "keep me"}, {"role": "user", "content": "hi", "name": "u1"}])
    assert render_messages(bundle, "responder", row).messages == [
        {"role": "system", "content": "keep me"}, {"role": "user", "content": "hi", "name": "u1"}]
    with pytest.raises(DataError, match="no prompt template"):
        render_messages(bundle, "responder", Row(id="v1", input={"question": "hi"}))


def test_reserved_variable_and_missing_user_turn(make_release):
    bundle = load_release(make_release())
    with pytest.raises(DataError, match=r"row r1, field 'input.context': 'context' is a reserved template variable"):
        render_messages(bundle, "responder", Row(id="r1", input={"question": "q", "context": "x"}))
    with pytest.raises(DataError, match="the row has none"):
        render_messages(bundle, "responder", Row(id="r2", input=[{"role": "assistant", "content": "hi"}]))


def test_a_document_prints_as_its_text(make_release):
    bundle = load_release(make_release(files={"prompts/answer.j2": "{{ context | join(' | ') }} / {{ question }}"}))
    row = Row(id="q1", input={"question": "x"}, context=["one", {"text": "two", "id": "k2"}])
    assert render_messages(bundle, "responder", row).messages[1]["content"] == "one | two / x"
