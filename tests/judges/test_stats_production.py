"""judges.stats beyond one confusion matrix: corrected pass rate (against the published `judgy` estimator), pass@k
and pass^k, McNemar, the paired bootstrap and the label-budget planner. No database."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from judgy import estimate_success_rate
from scipy.stats import binomtest

from judges.stats import (
    ConfusionMatrix,
    corrected_pass_rate,
    corrected_pass_rate_interval,
    labels_needed,
    mcnemar_exact,
    paired_bootstrap_difference,
    pass_at_k,
    pass_hat_k,
    wilson_interval,
)


def test_rogan_gladen_and_its_undefined_case():
    assert corrected_pass_rate(0.9, 0.8, 0.7) == pytest.approx((0.7 + 0.8 - 1) / 0.7)
    assert corrected_pass_rate(0.9, 0.9, 0.02) == 0.0  # clipped
    assert corrected_pass_rate(0.6, 0.4, 0.5) is None  # TPR + TNR = 1: no better than chance
    assert corrected_pass_rate(0.3, 0.3, 0.5) is None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_corrected_rate_matches_judgy_to_two_decimals(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(400) < 0.7
    # A judge with TPR ~0.9 and TNR ~0.8 on the labelled set.
    preds = np.where(labels, rng.random(400) < 0.9, rng.random(400) < 0.2)
    production = rng.random(50_000) < 0.75
    np.random.seed(seed)  # judgy draws from the global generator
    theta, low, high = estimate_success_rate(labels.astype(int), preds.astype(int), production.astype(int))
    cm = ConfusionMatrix.from_pairs(
        ("pass" if y else "fail", "pass" if p else "fail") for y, p in zip(labels, preds, strict=True)
    )
    ours = corrected_pass_rate_interval(cm, judged_passes=int(production.sum()), judged=len(production), seed=seed)
    assert round(ours.estimate, 2) == round(theta, 2)
    # judgy keeps the production rate fixed; ours also resamples it, which a 50,000-trace sample barely widens.
    assert ours.low == pytest.approx(low, abs=0.01)
    assert ours.high == pytest.approx(high, abs=0.01)
    assert ours.low < ours.estimate < ours.high


def test_the_corrected_interval_widens_with_a_small_production_sample():
    cm = ConfusionMatrix(tp=180, fn=20, fp=20, tn=80)
    big = corrected_pass_rate_interval(cm, judged_passes=35_000, judged=50_000)
    small = corrected_pass_rate_interval(cm, judged_passes=35, judged=50)
    assert (small.high - small.low) > (big.high - big.low) + 0.1


def test_the_corrected_interval_is_none_when_undefined():
    assert corrected_pass_rate_interval(ConfusionMatrix(tp=5, fn=5, fp=5, tn=5), judged_passes=3, judged=6) is None
    assert corrected_pass_rate_interval(ConfusionMatrix(tp=10), judged_passes=3, judged=6) is None
    assert corrected_pass_rate_interval(ConfusionMatrix(tp=9, fn=1, fp=1, tn=9), judged_passes=0, judged=0) is None
    with pytest.raises(ValueError, match="judged_passes <= judged"):
        corrected_pass_rate_interval(ConfusionMatrix(tp=1, tn=1), judged_passes=5, judged=4)


def brute_force(n: int, c: int, k: int) -> tuple[float, float]:
    """Over every k-subset of n trials (c of them successes): the share with at least one, and with all, passing."""
    trials = [True] * c + [False] * (n - c)
    subsets = list(combinations(trials, k))
    return sum(any(s) for s in subsets) / len(subsets), sum(all(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize(("n", "c", "k"), [(5, 0, 1), (5, 5, 3), (6, 2, 2), (8, 3, 4), (10, 7, 10), (4, 1, 4)])
def test_pass_at_k_and_pass_hat_k_match_brute_force(n, c, k):
    at_least_one, all_pass = brute_force(n, c, k)
    assert pass_at_k(n, c, k) == pytest.approx(at_least_one)
    assert pass_hat_k(n, c, k) == pytest.approx(all_pass)


def test_pass_at_k_edges():
    assert pass_at_k(3, 1, 5) is None and pass_hat_k(3, 1, 5) is None
    assert pass_at_k(10, 10, 1) == 1.0 and pass_hat_k(10, 0, 1) == 0.0
    with pytest.raises(ValueError):
        pass_at_k(3, 4, 1)
    with pytest.raises(ValueError):
        pass_hat_k(3, 1, 0)


@pytest.mark.parametrize(("only_a", "only_b"), [(0, 0), (3, 1), (10, 2), (25, 30), (0, 9)])
def test_mcnemar_is_the_exact_binomial_test_on_discordant_pairs(only_a, only_b):
    expected = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
    assert mcnemar_exact(only_a, only_b) == pytest.approx(expected)


def test_paired_bootstrap_difference():
    a = [True] * 70 + [False] * 30
    b = [True] * 60 + [False] * 10 + [True] * 25 + [False] * 5  # B passes 85, A passes 70
    diff, low, high = paired_bootstrap_difference(a, b, seed=4)
    assert diff == pytest.approx(0.15)
    assert 0 < low < diff < high
    assert paired_bootstrap_difference(a, b, seed=4) == (diff, low, high)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_difference([True], [True, False])


def test_the_label_budget_reaches_the_bound_with_the_fewest_labels():
    n = labels_needed(0.95, 0.90)
    assert wilson_interval(math.ceil(0.95 * n), n)[0] >= 0.899
    assert labels_needed(0.95, 0.90) < labels_needed(0.93, 0.90)  # a closer call needs more labels
    assert labels_needed(0.9, 0.9) is None and labels_needed(0.5, 0.9) is None
    with pytest.raises(ValueError):
        labels_needed(1.2, 0.9)
