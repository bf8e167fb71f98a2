"""JUnit XML for a regression-suite run (what CI systems show as tests). No Django here.

Two testsuites:
- `evalsuite`: one testcase per criterion with its numbers as properties; a `<failure>` for a regression or a pass
  rate under the threshold, an `<error>` when judgments errored.
  The run's warnings (golden set size, criteria too easy, baseline notes) are `warning` properties of this
  testsuite and its `<system-out>`, one `warning: …` line each, so a CI page shows them without failing the job.
- `evalsuite.cases`: one testcase per golden case × criterion, so a CI page shows which case broke. A case that
  passed is a passing test; one that fails now but passed in the baseline is a `<failure>` (it regressed); one that
  fails in the baseline too is `<skipped>` (a known failure: a suite aimed at ~70% always has some, and marking
  them red would make every run look broken). An errored judgment is an `<error>`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from xml.etree import ElementTree as ET

# XML 1.0 cannot carry most control characters; trace text can. They are replaced, never emitted.
_BAD_XML = dict.fromkeys(c for c in range(32) if chr(c) not in "\t\n\r")
MAX_TEXT_CHARS = 2_000


def _clean(text: object) -> str:
    return str(text).translate(_BAD_XML)[:MAX_TEXT_CHARS]


@dataclass(frozen=True)
class CaseVerdict:
    case_id: str
    criterion: str
    verdict: str  # "pass", "fail" or "" (an error)
    baseline: str | None  # the baseline's verdict, None when the case has no baseline
    reasoning: str = ""
    error: str = ""


def _property(parent: ET.Element, name: str, value: object) -> None:
    ET.SubElement(parent, "property", name=name, value=_clean("" if value is None else value))


def junit_xml(result: dict[str, Any], cases: Iterable[CaseVerdict] = ()) -> bytes:
    """The JUnit XML document for a run (`result` as evalsuite_run returns it)."""
    root = ET.Element("testsuites", name=_clean(f"evalsuite {result['project']}"))
    suite = ET.SubElement(root, "testsuite", name="evalsuite")
    properties = ET.SubElement(suite, "properties")
    _property(properties, "run_id", result["run_id"])
    _property(properties, "name", result["name"])
    _property(properties, "golden_version", result["golden_version"])
    _property(properties, "baseline", result["baseline"]["description"])
    for warning in result["warnings"]:
        _property(properties, "warning", warning)
    failures = errors = 0
    for c in result["criteria"]:
        case = ET.SubElement(
            suite, "testcase", classname=_clean(f"evalsuite.{result['project']}"), name=_clean(c["criterion"])
        )
        props = ET.SubElement(case, "properties")
        for key in ("judge", "kind", "version", "n", "passed", "errors", "pass_rate", "threshold"):
            _property(props, key, c[key])
        _property(props, "ci", "" if c["ci"] is None else f"{c['ci'][0]:.4f}..{c['ci'][1]:.4f}")
        for key in ("baseline_pass_rate", "difference", "p_value", "paired_n"):
            _property(props, key, c[key])
        summary = _summary(c)
        if c["verdict"] == "error":
            errors += 1
            ET.SubElement(case, "error", message=_clean("; ".join(c["failures"])), type="error").text = summary
        elif c["verdict"] != "pass":
            failures += 1
            ET.SubElement(case, "failure", message=_clean("; ".join(c["failures"])), type=c["verdict"]).text = summary
        else:
            ET.SubElement(case, "system-out").text = summary
    for c in result["not_covered"]:
        case = ET.SubElement(
            suite, "testcase", classname=_clean(f"evalsuite.{result['project']}"), name=_clean(c["criterion"])
        )
        ET.SubElement(case, "skipped", message=_clean(f"not covered: {c['reason']}"))
    suite.set("tests", str(len(result["criteria"]) + len(result["not_covered"])))
    suite.set("failures", str(failures))
    suite.set("errors", str(errors))
    suite.set("skipped", str(len(result["not_covered"])))
    if result["warnings"]:
        ET.SubElement(suite, "system-out").text = "\n".join(_clean(f"warning: {w}") for w in result["warnings"])

    per_case = ET.SubElement(root, "testsuite", name="evalsuite.cases")
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for v in cases:
        counts["tests"] += 1
        case = ET.SubElement(per_case, "testcase", classname=_clean(f"evalsuite.{v.criterion}"), name=_clean(v.case_id))
        if not v.verdict and not v.error:
            # Skipped by its judge (evalsuite stores a skip as no verdict, no error, the reason as reasoning).
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=_clean(v.reasoning or "skipped by the judge"))
        elif not v.verdict:
            counts["errors"] += 1
            ET.SubElement(case, "error", message=_clean(v.error or "the judge gave no verdict"), type="error")
        elif v.verdict == "fail" and v.baseline == "fail":
            counts["skipped"] += 1
            ET.SubElement(case, "skipped", message=_clean("fails in the baseline too (known failure)"))
        elif v.verdict == "fail":
            counts["failures"] += 1
            message = "fails; passed in the baseline" if v.baseline == "pass" else "fails (no baseline verdict)"
            ET.SubElement(case, "failure", message=message, type="fail").text = _clean(v.reasoning)
    for key, value in counts.items():
        per_case.set(key, str(value))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _summary(c: dict[str, Any]) -> str:
    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.1%}"

    parts = [f"pass rate {pct(c['pass_rate'])} ({c['passed']}/{c['judged']})"]
    if c["ci"] is not None:
        parts.append(f"95% CI {pct(c['ci'][0])}–{pct(c['ci'][1])}")
    if c["baseline_pass_rate"] is not None:
        parts.append(f"baseline {pct(c['baseline_pass_rate'])}, difference {c['difference'] * 100:+.1f} pt")
        parts.append(f"McNemar p = {c['p_value']:.3g} over {c['paired_n']} paired cases")
    if c["threshold"] is not None:
        parts.append(f"threshold {pct(c['threshold'])}")
    return "; ".join(parts)
