"""The suite's numbers per criterion and its JUnit XML, without a database (suites/suite_stats.py, suites/junit.py)."""

from __future__ import annotations

from xml.etree import ElementTree as ET

import pytest

from suites.junit import CaseVerdict, junit_xml
from suites.suite_stats import (
    criterion_numbers,
    format_table,
    golden_size_warning,
    suite_warnings,
    too_easy_warnings,
)


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


def rated(name: str, passed: int, n: int = 150) -> dict:
    """A criterion row that passed `passed` of `n` golden cases (no baseline: the warnings read the pass rate)."""
    return named(
        criterion_numbers(["pass"] * passed + ["fail"] * (n - passed), [None] * n, threshold=None, alpha=0.05), name
    )


def test_each_criterion_passing_more_than_90_percent_of_the_golden_set_is_named_with_its_rate():
    # 140/150 = 93.3% warns; 135/150 = 90.0% exactly does not (above 90% only); 105/150 = 70% is the aim.
    criteria = [rated("tone", 140), rated("plain", 135), rated("grounded", 105), rated("format", 150)]
    assert too_easy_warnings(criteria) == [
        "suite too easy for tone: its candidates pass 140 of 150 golden cases (93.3%), above 90%, so too few "
        "failures are left to show a regression; aim for about 70% (add harder golden cases, e.g. past failures)",
        "suite too easy for format: its candidates pass 150 of 150 golden cases (100.0%), above 90%, so too few "
        "failures are left to show a regression; aim for about 70% (add harder golden cases, e.g. past failures)",
    ]
    # One criterion at 100% among harder ones is named too: before, only "every criterion at 100%" warned.
    assert len(too_easy_warnings([rated("format", 150), rated("grounded", 105)])) == 1
    # A criterion with no verdict at all has no rate to judge by.
    nothing = named(criterion_numbers(["", ""], [None, None], threshold=None, alpha=0.05), "broken")
    assert too_easy_warnings([nothing]) == [] and too_easy_warnings([]) == []


def test_a_golden_set_outside_100_to_200_cases_warns_and_says_why():
    small = golden_size_warning(27)
    assert small == (
        "the golden set has 27 cases, fewer than 100: at a 70% pass rate a criterion's 95% interval is 36 points "
        "wide (50%–86%), too wide to see a regression; grow it to 100–200 cases (past failures, edge cases)"
    )
    assert golden_size_warning(99) is not None and "19 points wide" in golden_size_warning(99)
    assert golden_size_warning(100) is None and golden_size_warning(150) is None and golden_size_warning(200) is None
    large = golden_size_warning(250)
    assert large == (
        "the golden set has 250 cases, more than 200: every run judges each case with every criterion's judge, "
        "which is slow and, with LLM judges, costly (250 calls per LLM judge per run), for little more precision "
        "(at a 70% pass rate the 95% interval is 12 points wide, 13 at 200 cases); keep it to 100–200 cases "
        "(retire cases every release passes)"
    )
    assert golden_size_warning(201) is not None


def test_suite_warnings_put_the_golden_set_size_first_then_each_easy_criterion():
    warnings = suite_warnings([rated("tone", 27, n=27), rated("plain", 19, n=27)], cases=27)
    assert [w.split(":")[0] for w in warnings] == [
        "the golden set has 27 cases, fewer than 100",
        "suite too easy for tone",
    ]
    assert suite_warnings([rated("plain", 105)], cases=150) == []


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


def test_junit_carries_the_runs_warnings_so_ci_shows_them():
    result = result_with([rated("tone", 27, n=27)])
    result["warnings"] = suite_warnings(result["criteria"], cases=27)
    suite = ET.fromstring(junit_xml(result)).find("testsuite")
    shown = [p.get("value") for p in suite.find("properties") if p.get("name") == "warning"]
    assert shown == result["warnings"] and len(shown) == 2
    assert suite.find("system-out").text.splitlines() == [f"warning: {w}" for w in result["warnings"]]
    assert ET.fromstring(junit_xml(result_with([]))).find("testsuite/system-out") is None


def test_the_table_has_a_row_per_criterion_with_the_failure_reasons_and_the_exit_status():
    regressed = named(criterion_numbers(["fail"] * 10, ["pass"] * 10, threshold=None, alpha=0.05), "no_apology")
    text = format_table(result_with([regressed]))
    header, rule, row = text.splitlines()[2:5]
    assert header.split()[:4] == ["criterion", "judge", "n", "pass"] and set(rule) <= {"-", " "}
    assert row.split()[0] == "no_apology" and "0.0%" in row and "-100.0 pt" in row and row.endswith("REGRESSION")
    assert "no_apology: regressed by 100.0 points against the baseline (McNemar p = 0.00195 < 0.05)" in text
    assert "tone: no promoted judge" in text and text.endswith("FAILED (no_apology): exit 1")
