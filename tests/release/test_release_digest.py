"""The digest ignores formatting and secrets' values, and moves with every behavioural change."""

from __future__ import annotations

import pytest

from release_fixtures import BASE_FILES, BASE_YAML
from sluice.digest import digest_of, sha256_bytes
from sluice.release.loader import load_release

REFORMATTED = """\
# same release, keys reordered, flow style, different quoting and spacing
version: '1.0'
name: "support-bot"
description:   answers support questions
guardrails: [{name: no-ssn, type: blocked_patterns, threshold: 0.50, patterns: ['\\d{3}-\\d{2}-\\d{4}']}]
tools:
- {parameters_file: ./schemas/lookup_order.json, name: lookup_order}
retriever: {top_k: 4, index: kb-2026-11}
components:
  responder:
    params: {max_tokens: 200, temperature: 0.20}
    fallbacks: [{model: gpt-4o}]
    prompt: prompts/answer.j2
    system_prompt_file: prompts/system.txt
    api_key_env: OPENAI_API_KEY
    base_url: http://127.0.0.1:9/v1
    model: gpt-4o-mini
    provider: openai
"""


def test_digest_is_the_documented_hash(make_release):
    bundle = load_release(make_release())
    files = {p: sha256_bytes(b.encode()) for p, b in sorted(BASE_FILES.items())}
    assert bundle.digest == digest_of({"manifest": bundle.manifest, "files": files})


def test_formatting_and_key_order_do_not_change_the_digest(make_release):
    a = load_release(make_release(folder="a"))
    b = load_release(make_release(REFORMATTED, folder="b"))
    assert a.manifest == b.manifest
    assert a.digest == b.digest


def test_environment_values_never_enter_the_digest(make_release, monkeypatch):
    root = make_release()
    monkeypatch.setenv("OPENAI_API_KEY", "sk-one-aaaaaaaaaaaaaaaaaaaa")
    first = load_release(root).digest
    monkeypatch.setenv("OPENAI_API_KEY", "sk-two-bbbbbbbbbbbbbbbbbbbb")
    assert load_release(root).digest == first


YAML_CHANGES = [
    ("temperature: 0.2", "temperature: 0.3"),
    ("max_tokens: 200", "max_tokens: 201"),
    ("max_tokens: 200", "max_tokens: 200\n      seed: 7"),
    ("max_tokens: 200", "max_tokens: 200\n      top_p: 0.9"),
    ("max_tokens: 200", "max_tokens: 200\n      stop: ['###']"),
    ("model: gpt-4o-mini", "model: gpt-4o-mini-2024"),
    ("http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"),
    ("- model: gpt-4o", "- model: gpt-4.1"),
    ("- model: gpt-4o", "- model: gpt-4o\n      - model: gpt-4.1"),
    ("threshold: 0.5", "threshold: 0.6"),
    ("top_k: 4", "top_k: 5"),
    ("index: kb-2026-11", "index: kb-2026-12"),
    ("    prompt: prompts/answer.j2", "    prompt: prompts/answer.j2\n    context_budget: 800"),
    ("api_key_env: OPENAI_API_KEY", "api_key_env: OTHER_KEY"),
]


@pytest.mark.parametrize("old,new", YAML_CHANGES)
def test_every_behavioural_field_changes_the_digest(make_release, old, new):
    base = load_release(make_release(folder="base")).digest
    assert old in BASE_YAML
    changed = load_release(make_release(BASE_YAML.replace(old, new, 1), folder="changed")).digest
    assert changed != base


@pytest.mark.parametrize("rel,body", [
    ("prompts/answer.j2", BASE_FILES["prompts/answer.j2"] + " "),
    ("prompts/system.txt", "You are a careful support agent!\n"),
    ("schemas/lookup_order.json", '{"type": "object", "properties": {"order_id": {"type": "integer"}}}'),
])
def test_every_file_byte_changes_the_digest(make_release, rel, body):
    base = load_release(make_release(folder="base")).digest
    assert load_release(make_release(files={rel: body}, folder="changed")).digest != base


def test_unreferenced_files_in_the_folder_do_not_matter(make_release):
    base = load_release(make_release(folder="base")).digest
    assert load_release(make_release(files={"notes/README.md": "scratch"}, folder="other")).digest == base
