"""The bar is met on evidence: the 95% lower bounds of TPR and TNR (exact, as the report's) must clear it, and a
run whose point estimates reach it on too few labels says how many more labels of each class would show it."""

from __future__ import annotations

import pytest

from judges.evidence import BELOW, MEETS, SHORT, UNDEFINED, bar_check
from judges.stats import ConfusionMatrix, alignment_report, labels_needed, proportion_interval


def report(tp: int, fn: int, fp: int, tn: int) -> dict:
    return {"tp": tp, "fn": fn, "fp": fp, "tn": tn}


def test_one_pass_and_one_fail_both_right_do_not_meet_ninety_percent_and_the_shortfall_is_named():
    check = bar_check(report(1, 0, 0, 1), min_tpr=0.9, min_tnr=0.9)
    assert check.status == SHORT and not check.meets and check.reaches
    assert check.tpr.value == check.tnr.value == 1.0
    assert check.tpr.low == pytest.approx(proportion_interval(1, 1)[0]) == pytest.approx(0.025, abs=1e-6)
    assert labels_needed(1.0, 0.9) == 36
    assert check.shortfall == "35 more pass labels and 35 more fail labels"
    assert check.explain("On test, apology v2") == (
        "On test, apology v2 has TPR 100% (1/1) and TNR 100% (1/1), but on too few labels: the 95% lower bounds "
        "are TPR ≥ 2.5% and TNR ≥ 2.5%, under the bar of TPR ≥ 90% and TNR ≥ 90%. At these rates, 35 more pass "
        "labels and 35 more fail labels would show it."
    )


@pytest.mark.parametrize(
    ("fails", "status", "shortfall"),
    [(36, MEETS, ""), (35, SHORT, "1 more fail label"), (23, SHORT, "13 more fail labels")],
)
def test_a_perfect_tnr_meets_ninety_percent_from_thirty_six_fails_on(fails, status, shortfall):
    check = bar_check(report(60, 0, 0, fails), min_tpr=0.9, min_tnr=0.9)
    assert (check.status, check.shortfall) == (status, shortfall)
    assert check.tpr.meets and check.tnr.meets == (status == MEETS)
    assert (check.tnr.low >= 0.9) == (status == MEETS)


def test_a_rate_under_the_bar_is_below_it_and_no_number_of_labels_is_offered():
    check = bar_check(report(100, 0, 50, 50), min_tpr=0.9, min_tnr=0.9)
    assert (check.status, check.shortfall, check.tnr.more_labels) == (BELOW, "", None)
    assert check.explain("On test, v1") == (
        "On test, v1 has TPR 100% (100/100) and TNR 50% (50/100); the bar is TPR ≥ 90% and TNR ≥ 90%."
    )
    # A rate exactly at its minimum reaches it as a point, but no sample shows it above.
    exact = bar_check(report(100, 0, 10, 90), min_tpr=0.9, min_tnr=0.9)
    assert (exact.status, exact.reaches) == (BELOW, True)
    assert "never clears it, however many labels" in exact.explain("v1")


def test_a_report_without_passes_or_fails_is_undefined():
    for counts in (report(0, 0, 3, 7), report(5, 5, 0, 0), {}, None, {"tpr": 1.0, "tnr": 1.0}):
        check = bar_check(counts, min_tpr=0.9, min_tnr=0.9)
        assert (check.status, check.meets, check.reaches) == (UNDEFINED, False, False)
    assert "cannot measure both TPR and TNR" in bar_check({}, min_tpr=0.9, min_tnr=0.9).explain("v1")


def test_the_bar_decides_and_each_rate_has_its_own_minimum():
    counts = report(tp=95, fn=5, fp=10, tn=90)  # TPR lower bound 88.7%, TNR lower bound 82.4%
    assert bar_check(counts, min_tpr=0.8, min_tnr=0.8).status == MEETS
    assert bar_check(counts, min_tpr=0.85, min_tnr=0.85).status == SHORT
    assert bar_check(counts, min_tpr=0.9, min_tnr=0.8).status == SHORT
    assert bar_check(counts, min_tpr=0.95, min_tnr=0.8).status == BELOW
    assert bar_check(counts, min_tpr=0.95, min_tnr=0.85).short_bar_text == "95%/85%"


def test_a_real_alignment_report_is_read_from_its_counts_not_its_bootstrap_interval():
    # The rule reads the report's counts (a stored report may carry older, collapsed intervals).
    perfect = alignment_report(ConfusionMatrix(tp=30, fn=0, fp=0, tn=30), resamples=200)
    check = bar_check(perfect, min_tpr=0.9, min_tnr=0.9)
    assert check.status == SHORT and check.shortfall == "6 more pass labels and 6 more fail labels"
