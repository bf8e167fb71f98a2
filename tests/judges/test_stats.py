"""judges.stats against scikit-learn's metrics and known reference values; no database."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, cohen_kappa_score, f1_score, precision_score, recall_score

from judges.stats import (
    METRICS,
    ConfusionMatrix,
    alignment_report,
    bootstrap_intervals,
    metrics,
    wilson_interval,
)


def verdict_lists(cm: ConfusionMatrix) -> tuple[list[str], list[str]]:
    expert = ["pass"] * (cm.tp + cm.fn) + ["fail"] * (cm.fp + cm.tn)
    judge = ["pass"] * cm.tp + ["fail"] * cm.fn + ["pass"] * cm.fp + ["fail"] * cm.tn
    return expert, judge


def random_matrices(count: int, seed: int = 3) -> list[ConfusionMatrix]:
    rng = random.Random(seed)
    return [
        ConfusionMatrix(tp=rng.randint(0, 60), fn=rng.randint(0, 30), fp=rng.randint(0, 30), tn=rng.randint(0, 60))
        for _ in range(count)
    ]


@pytest.mark.parametrize("cm", random_matrices(200), ids=lambda cm: f"{cm.tp}-{cm.fn}-{cm.fp}-{cm.tn}")
def test_metrics_match_scikit_learn_on_random_confusion_matrices(cm):
    expert, judge = verdict_lists(cm)
    got = metrics(cm)
    if cm.n == 0:
        assert all(value is None for value in got.values())
        return
    both_classes = {"pass", "fail"}
    if cm.tp + cm.fn:
        assert got["tpr"] == pytest.approx(recall_score(expert, judge, pos_label="pass"))
    else:
        assert got["tpr"] is None
    if cm.tn + cm.fp:
        assert got["tnr"] == pytest.approx(recall_score(expert, judge, pos_label="fail"))
        assert got["recall_fail"] == got["tnr"]
    if cm.tn + cm.fn:
        assert got["precision_fail"] == pytest.approx(precision_score(expert, judge, pos_label="fail"))
    else:
        assert got["precision_fail"] is None
    if cm.tn + cm.fn + cm.fp:
        expected_f1 = f1_score(expert, judge, pos_label="fail", labels=["pass", "fail"], zero_division=0.0)
        assert got["f1_fail"] == pytest.approx(expected_f1)
    assert got["accuracy"] == pytest.approx(accuracy_score(expert, judge))
    single_class_agreement = set(expert) == set(judge) and len(set(expert)) == 1
    if single_class_agreement:
        assert got["kappa"] is None
    else:
        assert got["kappa"] == pytest.approx(cohen_kappa_score(expert, judge, labels=sorted(both_classes)))


def test_pairs_build_the_matrix_and_bad_pairs_name_their_position():
    cm = ConfusionMatrix.from_pairs([("pass", "pass"), ("pass", "fail"), ("fail", "pass"), ("fail", "fail")] * 2)
    assert (cm.tp, cm.fn, cm.fp, cm.tn, cm.n) == (2, 2, 2, 2, 8)
    with pytest.raises(ValueError, match=r"pair 1: .*'maybe'"):
        ConfusionMatrix.from_pairs([("pass", "pass"), ("pass", "maybe")])
    with pytest.raises(ValueError, match="tp must be a non-negative integer"):
        ConfusionMatrix(tp=-1)


@pytest.mark.parametrize(
    ("cm", "undefined"),
    [
        (ConfusionMatrix(), set(METRICS)),
        (ConfusionMatrix(tp=10), {"tnr", "recall_fail", "precision_fail", "f1_fail", "kappa"}),
        (ConfusionMatrix(tn=10), {"tpr", "kappa"}),
        (ConfusionMatrix(tp=5, fp=5), {"precision_fail"}),
    ],
    ids=["empty", "all pass", "all fail", "judge never fails"],
)
def test_edge_cases_are_undefined_not_zero(cm, undefined):
    got = metrics(cm)
    assert {name for name, value in got.items() if value is None} == undefined
    intervals = bootstrap_intervals(cm, resamples=500)
    assert {name for name, value in intervals.items() if value is None} == undefined


def test_bootstrap_is_seeded_and_covers_the_point_estimate():
    cm = ConfusionMatrix(tp=700, fn=50, fp=40, tn=210)
    first = bootstrap_intervals(cm, seed=7)
    assert first == bootstrap_intervals(cm, seed=7)
    assert first != bootstrap_intervals(cm, seed=8)
    point = metrics(cm)
    for name, (low, high) in first.items():
        assert low < point[name] < high, name
    # The normal approximation of the TPR interval is close to the bootstrap's at this size.
    tpr, n_pass = point["tpr"], cm.tp + cm.fn
    half = 1.96 * math.sqrt(tpr * (1 - tpr) / n_pass)
    assert first["tpr"][0] == pytest.approx(tpr - half, abs=0.006)
    assert first["tpr"][1] == pytest.approx(tpr + half, abs=0.006)


def test_bootstrap_interval_coverage_is_about_95_percent():
    """Draw data from a known judge many times: the interval should contain the true TPR about 95% of the time."""
    rng = np.random.default_rng(11)
    true_tpr, true_tnr, hits, trials = 0.9, 0.8, 0, 300
    for trial in range(trials):
        passes, fails = 150, 60
        tp = int(rng.binomial(passes, true_tpr))
        tn = int(rng.binomial(fails, true_tnr))
        interval = bootstrap_intervals(
            ConfusionMatrix(tp=tp, fn=passes - tp, fp=fails - tn, tn=tn), resamples=2000, seed=trial
        )["tpr"]
        hits += interval[0] <= true_tpr <= interval[1]
    assert 0.90 <= hits / trials <= 0.985


def test_wilson_matches_reference_values():
    # Reference: scipy's binomtest(...).proportion_ci(method="wilson"), and the textbook 5/10 example.
    assert wilson_interval(5, 10) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    for successes, n in [(0, 10), (10, 10), (1, 3), (37, 120), (999, 1000)]:
        reference = binomtest(successes, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(successes, n) == pytest.approx((reference.low, reference.high), abs=1e-6)
    assert wilson_interval(0, 0) is None
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(11, 10)


def test_the_report_has_the_interface_keys_and_keeps_errors_outside_the_matrix():
    report = alignment_report(ConfusionMatrix(tp=8, fn=2, fp=1, tn=9), errors=3, split="dev", resamples=1000)
    assert set(report) == {"n", "tp", "fp", "tn", "fn", *METRICS, "ci", "errors", "split"}
    assert (report["n"], report["errors"], report["split"]) == (20, 3, "dev")
    assert set(report["ci"]) == set(METRICS)
    assert all(isinstance(bound, float) for bound in report["ci"]["kappa"])
    assert alignment_report(ConfusionMatrix())["ci"]["tpr"] is None
