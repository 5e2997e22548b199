import json
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest
from gate_builders import info, make_records, make_rows
from rich.console import Console

from sluice.gate import parse_policy, run_gate
from sluice.gate.report import render_terminal, to_html, to_json, to_junit, to_markdown, write_reports
from sluice.gate.report.json_report import TOP_LEVEL_KEYS

EVIL = "<script>alert('x')</script> | pipe"


@pytest.fixture(scope="module")
def result():
    rows = make_rows({"billing": 40, "enterprise": 40})
    rows[0] = rows[0].model_copy(update={"expected_answer": EVIL})
    base = {"groundedness": np.ones(80, bool), "tone": np.ones(80, bool)}
    cand = {"groundedness": np.array([False] * 15 + [True] * 65), "tone": np.ones(80, bool)}
    crecs = make_records(rows, cand)
    crecs["billing-0"].output.output = EVIL
    policy = parse_policy("evaluators: [{name: groundedness, critical: true}, {name: tone}]\n"
                          "cohorts: {min_rows: 20}")
    return run_gate(policy, rows, crecs, make_records(rows, base), info("c", ["groundedness", "tone"]),
                    info("b", ["groundedness", "tone"]))


def test_verdict_of_fixture(result):
    assert result.verdict == "fail" and result.exit_code == 1
    assert any("groundedness in cohort 'billing'" in r for r in result.reasons)


def test_json_schema_keys(result):
    data = json.loads(to_json(result))
    assert tuple(data) == TOP_LEVEL_KEYS
    assert data["schema"] == "sluice.gate.v1"
    assert {"evaluator", "cohort", "pass_delta", "pass_delta_ci", "mcnemar_p"} <= set(data["eval"][0])
    assert {"id", "status", "message", "critical"} <= set(data["checks"][0])
    assert data["regressed_rows"][0]["row_id"] == "billing-0"


def test_junit_is_parseable_with_one_case_per_check(result):
    root = ET.fromstring(to_junit(result))
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(result.checks) == int(suite.get("tests"))
    failures = [c for c in cases if c.find("failure") is not None]
    assert len(failures) == int(suite.get("failures")) > 0
    msg = failures[0].find("failure").get("message")
    assert "groundedness" in msg and "a significant drop" in msg
    props = {p.get("name"): p.get("value") for p in suite.find("properties")}
    assert props["verdict"] == "fail"


class _Checker(HTMLParser):
    VOID = {"meta", "br", "img", "input", "hr", "link"}

    def __init__(self):
        super().__init__()
        self.stack, self.scripts, self.errors = [], 0, []

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self.scripts += 1
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
        else:
            self.stack.pop()


def test_html_is_well_formed_self_contained_and_escaped(result):
    page = to_html(result)
    checker = _Checker()
    checker.feed(page)
    assert checker.errors == [] and checker.stack == []
    assert checker.scripts == 0
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<svg" in page and "billing-0" in page


def test_markdown_escapes_and_lists_top_rows(result):
    md = to_markdown(result)
    assert "<script>" not in md and "&lt;script&gt;" in md
    assert "\\| pipe" in md
    assert "FAIL" in md.splitlines()[0]
    assert "Top regressed rows" in md


def test_terminal_report_renders(result):
    console = Console(record=True, width=200)
    render_terminal(result, console)
    text = console.export_text()
    assert "FAIL" in text and "groundedness" in text and "billing" in text


def test_write_reports(tmp_path, result):
    written = write_reports(result, json=tmp_path / "g.json", junit=tmp_path / "g.xml", html=tmp_path / "out/g.html")
    assert [p.name for p in written] == ["g.json", "g.xml", "g.html"]
    assert json.loads((tmp_path / "g.json").read_text())["verdict"] == "fail"
