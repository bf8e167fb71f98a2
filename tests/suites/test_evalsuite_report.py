"""The suite's numbers per criterion and its JUnit XML, without a database (suites/suite_stats.py, suites/junit.py)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from suites.junit import CaseVerdict, junit_xml
from suites.suite_stats import criterion_numbers, format_table, too_easy


def test_the_difference_and_mcnemar_use_only_cases_paired_with_a_verdict_on_both_sides():
    candidate = ["pass", "fail", "fail", "", "pass", "pass"]
    baseline = ["pass", "pass", None, "pass", "", "fail"]
    numbers = criterion_numbers(candidate, baseline, threshold=None, alpha=0.05)
    # Cases 0, 1 and 5 are paired: (pass, pass), (pass → fail), (fail → pass).
    assert numbers["paired_n"] == 3 and numbers["only_baseline_passed"] == 1 and numbers["only_candidate_passed"] == 1
    assert numbers["difference"] == 0.0 and numbers["p_value"] == 1.0
    assert numbers["pass_rate"] == 3 / 5 and numbers["judged"] == 5 and numbers["errors"] == 1
    assert numbers["baseline_errors"] == 1
    # An errored judgment makes the criterion an error whatever the rates say.
    assert numbers["verdict"] == "error" and numbers["failures"] == ["1 judgment errored"]


def test_regression_under_threshold_and_improvement_are_told_apart():
    base = ["pass"] * 20
    worse = criterion_numbers(["fail"] * 8 + ["pass"] * 12, base, threshold=0.7, alpha=0.05)
    assert worse["verdict"] == "regression" and worse["p_value"] == pytest.approx(2 * 0.5**8)
    assert len(worse["failures"]) == 2 and "under the threshold 70.0%" in worse["failures"][1]
    low = criterion_numbers(["fail"] * 8 + ["pass"] * 12, ["fail"] * 8 + ["pass"] * 12, threshold=0.7, alpha=0.05)
    assert low["verdict"] == "under_threshold" and low["difference"] == 0.0
    better = criterion_numbers(["pass"] * 20, ["fail"] * 8 + ["pass"] * 12, threshold=None, alpha=0.05)
    assert better["verdict"] == "pass" and better["improved"] and better["difference"] == pytest.approx(0.4)


def test_a_criterion_with_no_verdict_has_no_rate_and_no_baseline_means_no_comparison():
    numbers = criterion_numbers(["", ""], [None, None], threshold=0.5, alpha=0.05)
    assert numbers["pass_rate"] is None and numbers["ci"] is None and numbers["p_value"] is None
    assert numbers["failures"] == ["2 judgments errored", "pass rate no verdict is under the threshold 50.0%"]
    with pytest.raises(ValueError, match="one baseline per case"):
        criterion_numbers(["pass"], [], threshold=None, alpha=0.05)


def test_too_easy_only_when_every_criterion_passes_everything():
    perfect = criterion_numbers(["pass"] * 5, ["pass"] * 5, threshold=None, alpha=0.05)
    one_fail = criterion_numbers(["pass"] * 4 + ["fail"], ["pass"] * 5, threshold=None, alpha=0.05)
    assert too_easy([perfect, perfect]) and not too_easy([perfect, one_fail]) and not too_easy([])


def result_with(criteria: list[dict]) -> dict:
    return {
        "run_id": 7, "name": "v2", "project": "acme", "golden_version": 3, "cases": 3, "alpha": 0.05,
        "baseline": {"description": "the golden traces' own outputs"}, "criteria": criteria,
        "not_covered": [{"criterion": "tone", "reason": "no promoted judge"}], "warnings": [], "exit_code": 1,
    }  # fmt: skip


def named(numbers: dict, name: str) -> dict:
    return {
        "criterion": name,
        "criterion_id": 1,
        "judge": f"{name}-judge",
        "kind": "assertion",
        "version": 2,
        **numbers,
    }


def test_junit_marks_errors_and_keeps_control_characters_out_of_the_xml():
    errored = named(criterion_numbers(["pass", "", "fail"], ["pass", "pass", "fail"], threshold=None, alpha=0.05), "a")
    cases = [
        CaseVerdict("t-1", "a", "pass", "pass"),
        CaseVerdict("t-2", "a", "", "pass", error="Timeout \x00\x07 talking to the provider"),
        CaseVerdict("t-3", "a", "fail", "fail", reasoning="still apologises"),
    ]
    root = ET.fromstring(junit_xml(result_with([errored]), cases))
    per_criterion, per_case = root.findall("testsuite")
    assert (per_criterion.get("tests"), per_criterion.get("errors"), per_criterion.get("skipped")) == ("2", "1", "1")
    assert per_criterion.find("testcase/error").get("message") == "1 judgment errored"
    assert (per_case.get("errors"), per_case.get("skipped"), per_case.get("failures")) == ("1", "1", "0")
    assert per_case.find("testcase/error").get("message") == "Timeout  talking to the provider"


def test_the_table_has_a_row_per_criterion_with_the_failure_reasons_and_the_exit_status():
    regressed = named(criterion_numbers(["fail"] * 10, ["pass"] * 10, threshold=None, alpha=0.05), "no_apology")
    text = format_table(result_with([regressed]))
    header, rule, row = text.splitlines()[2:5]
    assert header.split()[:4] == ["criterion", "judge", "n", "pass"] and set(rule) <= {"-", " "}
    assert row.split()[0] == "no_apology" and "0.0%" in row and "-100.0 pt" in row and row.endswith("REGRESSION")
    assert "no_apology: regressed by 100.0 points against the baseline (McNemar p = 0.00195 < 0.05)" in text
    assert "tone: no promoted judge" in text and text.endswith("FAILED (no_apology): exit 1")
