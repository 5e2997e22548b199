"""Shared release folder content for the release tests (imported by name: conftest is not importable)."""

BASE_YAML = """\
name: support-bot
version: "1.0"
description: answers support questions
components:
  responder:
    provider: openai
    model: gpt-4o-mini
    base_url: http://127.0.0.1:9/v1
    api_key_env: OPENAI_API_KEY
    system_prompt_file: prompts/system.txt
    prompt: prompts/answer.j2
    params:
      temperature: 0.2
      max_tokens: 200
    fallbacks:
      - model: gpt-4o
retriever:
  index: kb-2026-11
  top_k: 4
tools:
  - name: lookup_order
    parameters_file: schemas/lookup_order.json
guardrails:
  - name: no-ssn
    type: blocked_patterns
    patterns: ['\\d{3}-\\d{2}-\\d{4}']
    threshold: 0.5
"""

BASE_FILES = {
    "prompts/system.txt": "You are a careful support agent.\n",
    "prompts/answer.j2": "{% for d in context %}[{{ loop.index }}] {{ d.text }}\n{% endfor %}Question: {{ question }}\n",
    "schemas/lookup_order.json": '{"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}',
}
