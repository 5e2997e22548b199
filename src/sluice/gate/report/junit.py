"""JUnit XML: one testcase per check, so CI systems list every evaluator x cohort judgement.

fail -> <failure>, error budget exceeded -> <error>, inconclusive and skipped -> <skipped> with
the reason (the gate's exit code, not this file, decides whether CI stops).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from sluice.gate.result import GateResult


def to_junit(result: GateResult) -> str:
    checks = result.checks
    counts = {s: sum(1 for c in checks if c.status == s) for s in ("fail", "error", "inconclusive", "skipped")}
    attrs = {"tests": str(len(checks)), "failures": str(counts["fail"]), "errors": str(counts["error"]),
             "skipped": str(counts["inconclusive"] + counts["skipped"]), "time": "0"}
    suites = ET.Element("testsuites", name="sluice gate", **attrs)
    suite = ET.SubElement(suites, "testsuite", name=f"sluice gate {result.candidate.ref} vs {result.baseline.ref}",
                          **attrs)
    props = ET.SubElement(suite, "properties")
    for name, value in (("verdict", result.verdict), ("exit_code", str(result.exit_code)),
                        ("candidate", result.candidate.digest), ("baseline", result.baseline.digest),
                        ("dataset", f"{result.dataset_name}@{result.dataset_version}"),
                        ("policy_digest", result.policy_digest)):
        ET.SubElement(props, "property", name=name, value=value)
    for c in checks:
        classname = f"sluice.gate.{c.evaluator or 'release'}"
        case = ET.SubElement(suite, "testcase", classname=classname, name=f"{c.cohort}: {c.metric}", time="0")
        if c.status == "fail":
            el = ET.SubElement(case, "failure", message=c.message, type="critical" if c.critical else "regression")
            el.text = c.message
        elif c.status == "error":
            el = ET.SubElement(case, "error", message=c.message, type="error_budget")
            el.text = c.message
        elif c.status in ("inconclusive", "skipped"):
            ET.SubElement(case, "skipped", message=f"{c.status}: {c.message}")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
