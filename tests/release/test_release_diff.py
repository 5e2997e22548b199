from __future__ import annotations

from release_fixtures import BASE_FILES, BASE_YAML
from sluice.release.diff import diff_releases, format_changes, sampling_changes
from sluice.release.loader import load_release


def test_identical_releases_have_no_changes(make_release):
    a = load_release(make_release(folder="a"))
    assert diff_releases(a, load_release(make_release(folder="b"))) == []


def test_diff_names_fields_files_and_sampling(make_release):
    a = load_release(make_release(folder="a"))
    yaml = (BASE_YAML.replace("temperature: 0.2", "temperature: 0.7")
            .replace("model: gpt-4o-mini", "model: gpt-4.1-mini")
            .replace("threshold: 0.5", "threshold: 0.8")
            .replace("tools:\n", "tools:\n  - name: refund\n    description: issue a refund\n"))
    template = BASE_FILES["prompts/answer.j2"].replace("Question:", "Customer question:")
    b = load_release(make_release(yaml, files={"prompts/answer.j2": template, "prompts/extra.txt": "unused"}, folder="b"))
    changes = {c.path: c for c in diff_releases(a, b)}
    assert set(changes) == {
        "components.responder.params.temperature",
        "components.responder.model",
        "guardrails[no-ssn].threshold",
        "tools[refund]",
        "file:prompts/answer.j2",
    }
    t = changes["components.responder.params.temperature"]
    assert (t.before, t.after, t.kind, t.is_sampling) == (0.2, 0.7, "changed", True)
    assert changes["tools[refund]"].kind == "added"
    assert changes["tools[refund]"].after["description"] == "issue a refund"
    assert not changes["components.responder.model"].is_sampling
    assert [c.path for c in sampling_changes(list(changes.values()))] == ["components.responder.params.temperature"]
    text = changes["file:prompts/answer.j2"].text_diff
    assert "-{% endfor %}Question: {{ question }}" in text and "+{% endfor %}Customer question: {{ question }}" in text
    assert text.startswith("--- a/prompts/answer.j2\n+++ b/prompts/answer.j2")
    rendered = format_changes(diff_releases(a, b))
    assert "~ components.responder.params.temperature: 0.2 -> 0.7   [sampling]" in rendered


def test_file_added_and_removed_and_param_removed(make_release):
    a = load_release(make_release(folder="a"))
    yaml = BASE_YAML.replace("    system_prompt_file: prompts/system.txt\n", "    system_prompt_file: prompts/sys2.txt\n")
    yaml = yaml.replace("      max_tokens: 200\n", "")
    b = load_release(make_release(yaml, files={"prompts/sys2.txt": "Be brief."}, folder="b"))
    changes = {c.path: c for c in diff_releases(a, b)}
    assert changes["file:prompts/system.txt"].kind == "removed"
    assert changes["file:prompts/sys2.txt"].kind == "added"
    assert changes["components.responder.system_prompt_file"].after == "prompts/sys2.txt"
    removed = changes["components.responder.params.max_tokens"]
    assert (removed.kind, removed.before, removed.after, removed.is_sampling) == ("removed", 200, None, True)


def test_long_template_diff_is_cut(make_release):
    a = load_release(make_release(files={"prompts/answer.j2": "".join(f"line {i}\n" for i in range(200))}, folder="a"))
    b = load_release(make_release(files={"prompts/answer.j2": "".join(f"LINE {i}\n" for i in range(200))}, folder="b"))
    (change,) = diff_releases(a, b)
    lines = change.text_diff.splitlines()
    assert len(lines) == 41 and lines[-1].endswith("more diff lines)")


def test_reordered_tools_report_the_order_only(make_release):
    two = BASE_YAML.replace("tools:\n", "tools:\n  - name: refund\n")
    swapped = BASE_YAML.replace("guardrails:\n", "  - name: refund\nguardrails:\n")
    a = load_release(make_release(two, folder="a"))
    b = load_release(make_release(swapped, folder="b"))
    (change,) = diff_releases(a, b)
    assert (change.path, change.before, change.after) == ("tools.order", ["refund", "lookup_order"], ["lookup_order", "refund"])
