"""Every kind of bad release file fails with one line naming file, line and field."""

from __future__ import annotations

import pytest

from release_fixtures import BASE_YAML
from sluice.errors import ConfigError
from sluice.release.loader import load_release


def error_of(make_release, yaml: str | None = None, files=None) -> str:
    root = make_release(yaml, files)
    with pytest.raises(ConfigError) as exc:
        load_release(root)
    return str(exc.value)


def test_loads_base_release_with_normalised_paths_and_files(make_release):
    bundle = load_release(make_release(BASE_YAML.replace("prompt: prompts/answer.j2", "prompt: ./prompts//answer.j2")))
    assert bundle.release.ref == "support-bot@1.0"
    assert bundle.manifest["components"]["responder"]["prompt"] == "prompts/answer.j2"
    assert bundle.release.responder.prompt == "prompts/answer.j2"
    assert sorted(bundle.files) == ["prompts/answer.j2", "prompts/system.txt", "schemas/lookup_order.json"]
    assert bundle.files["prompts/system.txt"] == b"You are a careful support agent.\n"
    assert bundle.system_prompt("responder") == "You are a careful support agent."
    # defaults are filled in, unset fields left out
    assert bundle.manifest["components"]["responder"]["timeout_s"] == 60.0
    assert "seed" not in bundle.manifest["components"]["responder"]["params"]
    assert bundle.digest.startswith("sha256:") and len(bundle.digest) == 71


def test_folder_or_file_path_give_the_same_bundle(make_release):
    root = make_release()
    assert load_release(root).digest == load_release(root / "release.yaml").digest


def test_invalid_yaml_names_file_and_line(make_release):
    msg = error_of(make_release, BASE_YAML.replace("  top_k: 4", "  top_k: [4"))
    assert msg.startswith(f"{make_release()}/release.yaml:20: invalid YAML")


def test_out_of_range_value_names_line_and_field(make_release):
    msg = error_of(make_release, BASE_YAML.replace("temperature: 0.2", "temperature: 3"))
    assert msg == (f"{make_release()}/release.yaml:13, field 'components.responder.params.temperature': "
                   "Input should be less than or equal to 2")


def test_unknown_field_is_a_typo_not_a_default(make_release):
    msg = error_of(make_release, BASE_YAML.replace("temperature: 0.2", "temprature: 0.2"))
    assert msg.endswith("release.yaml:13, field 'components.responder.params.temprature': is not a known field")


def test_wrong_type_names_field(make_release):
    msg = error_of(make_release, BASE_YAML.replace("max_tokens: 200", "max_tokens: lots"))
    assert "release.yaml:14, field 'components.responder.params.max_tokens': Input should be a valid integer" in msg


def test_missing_file_names_field_and_line(make_release):
    msg = error_of(make_release, files={"schemas/lookup_order.json": None})
    assert "release.yaml:22, field 'tools[0].parameters_file': file 'schemas/lookup_order.json' not found" in msg


def test_absolute_path_is_refused(make_release):
    msg = error_of(make_release, BASE_YAML.replace("prompt: prompts/answer.j2", "prompt: /etc/answer.j2"))
    assert "release.yaml:11, field 'components.responder.prompt': use a path relative to the release folder" in msg


def test_template_that_does_not_parse_names_template_file_and_line(make_release):
    root = make_release(files={"prompts/answer.j2": "line one\n{% for d in context %}\n{{ d.text }\n"})
    with pytest.raises(ConfigError) as exc:
        load_release(root)
    assert str(exc.value).startswith(f"{root}/prompts/answer.j2:3: template does not parse:")
    assert "components.responder.prompt at " in str(exc.value)


def test_template_include_is_refused(make_release):
    msg = error_of(make_release, files={"prompts/answer.j2": "ok\n{% include 'other.j2' %}\n"})
    assert "prompts/answer.j2:2: templates must be self-contained" in msg


def test_schema_file_that_is_not_json(make_release):
    msg = error_of(make_release, files={"schemas/lookup_order.json": '{"type": "object",\n "properties": }'})
    assert "schemas/lookup_order.json:2: not valid JSON" in msg


def test_schema_file_that_is_not_a_schema(make_release):
    msg = error_of(make_release, files={"schemas/lookup_order.json": '{"type": "objekt"}'})
    assert "schemas/lookup_order.json: not a valid JSON schema:" in msg and "tools[0].parameters_file" in msg


def test_inline_guardrail_schema_is_checked(make_release):
    yaml = BASE_YAML + "  - name: shape\n    type: json_schema\n    schema: {type: 12}\n"
    msg = error_of(make_release, yaml)
    assert "release.yaml:30, field 'guardrails[1].schema': not a valid JSON schema" in msg


def test_bad_guardrail_pattern_is_refused(make_release):
    msg = error_of(make_release, BASE_YAML.replace(r"['\d{3}-\d{2}-\d{4}']", "['(unclosed']"))
    assert "field 'guardrails[0].patterns'" in msg and "not a valid regular expression" in msg


@pytest.mark.parametrize("line,field", [
    ("    api_key: sk-proj-abcdefghijklmnop1234", "components.responder.api_key"),
    ("    api_key: hunter2", "components.responder.api_key"),
])
def test_literal_key_in_component_is_refused_before_validation(make_release, line, field):
    yaml = BASE_YAML.replace("    api_key_env: OPENAI_API_KEY", line)
    msg = error_of(make_release, yaml)
    assert f"release.yaml:9, field '{field}':" in msg and "api_key_env" in msg
    assert "hunter2" not in msg and "sk-proj" not in msg  # the secret is never echoed


@pytest.mark.parametrize("extra,field", [
    ("metadata:\n  note: 'Bearer abcdefghijklmnop'\n", "metadata.note"),
    ("metadata:\n  password: letmein\n", "metadata.password"),
    ("metadata:\n  slack_secret: x1\n", "metadata.slack_secret"),
    ("metadata:\n  notes: ['ok', 'AKIAABCDEFGHIJKLMNOP']\n", "metadata.notes[1]"),
])
def test_secret_anywhere_in_manifest_is_refused(make_release, extra, field):
    msg = error_of(make_release, BASE_YAML + extra)
    assert f"release.yaml:29, field '{field}':" in msg


def test_env_interpolation_is_refused(make_release):
    msg = error_of(make_release, BASE_YAML.replace("http://127.0.0.1:9/v1", "${OPENAI_BASE}/v1"))
    assert "release.yaml:8, field 'components.responder.base_url': environment interpolation" in msg


def test_api_key_env_must_be_a_name_not_a_key(make_release):
    msg = error_of(make_release, BASE_YAML.replace("api_key_env: OPENAI_API_KEY", "api_key_env: abc-123"))
    assert "field 'components.responder.api_key_env'" in msg


def test_http_target_headers_name_env_vars(make_release):
    yaml = ("name: app\nversion: '2'\ntarget:\n  type: http\n  url: http://127.0.0.1:9/answer\n"
            "  headers_env:\n    Authorization: APP_TOKEN\n")
    bundle = load_release(make_release(yaml, files={}))
    assert bundle.release.target.headers_env == {"Authorization": "APP_TOKEN"}
    bad = yaml.replace("APP_TOKEN", "Bearer abcdefghijk123")
    assert "release.yaml:7, field 'target.headers_env.Authorization'" in error_of(make_release, bad)


def test_empty_and_non_mapping_manifests(make_release):
    assert error_of(make_release, "").endswith("release.yaml:1: file is empty")
    assert error_of(make_release, "- a\n- b\n").endswith("release.yaml:1: a release must be a YAML mapping")


def test_missing_release_folder(tmp_path):
    with pytest.raises(ConfigError, match="no release.yaml or release.yml in this folder"):
        load_release(tmp_path)


def test_yaml_schema_files_are_accepted_and_checked(make_release):
    yaml = BASE_YAML.replace("schemas/lookup_order.json", "schemas/lookup_order.yaml")
    ok = "type: object\nproperties:\n  order_id: {type: string}\n"
    assert load_release(make_release(yaml, files={"schemas/lookup_order.yaml": ok})).files["schemas/lookup_order.yaml"]
    msg = error_of(make_release, yaml, files={"schemas/lookup_order.yaml": "type: object\nproperties: [\n"})
    assert "schemas/lookup_order.yaml:3: not valid YAML" in msg
