"""judges.stats beyond one confusion matrix: corrected pass rate (against the published `judgy` estimator), pass@k
and pass^k, McNemar, the paired bootstrap and the label-budget planner. No database."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from judgy import estimate_success_rate
from scipy.stats import binomtest, multinomial

from judges.stats import (
    ConfusionMatrix,
    corrected_pass_rate,
    corrected_pass_rate_interval,
    label_shortfall,
    labels_needed,
    mcnemar_exact,
    paired_bootstrap_difference,
    paired_bootstrap_difference_from_counts,
    pass_at_k,
    pass_hat_k,
    proportion_interval,
    rate_lower_bounds,
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


def test_a_corrected_rate_from_a_near_chance_judge_says_it_was_clipped_and_draws_were_dropped():
    """TPR = TNR = 51%: Rogan–Gladen gives (0.3 + 0.51 − 1) / 0.02 = −950%, clipped to 0, and in about 40% of the
    draws the judge is no better than chance; the interval came out as [0, 0] with neither said."""
    rate = corrected_pass_rate_interval(ConfusionMatrix(tp=51, fn=49, fp=49, tn=51), judged_passes=30, judged=100)
    assert rate.estimate == 0.0 and rate.unclipped == pytest.approx(-9.5)
    assert rate.clipped and rate.unreliable
    assert 0.3 < rate.dropped < 0.45
    clipped, dropped = rate.flags
    assert clipped.startswith("clipped to 0%: the correction gives -950%")
    assert dropped.startswith(f"{rate.dropped:.0%} of the draws dropped")


def test_a_good_judge_has_no_flags_and_a_clipped_estimate_alone_is_still_reliable():
    good = ConfusionMatrix(tp=270, fn=10, fp=12, tn=108)
    fine = corrected_pass_rate_interval(good, judged_passes=80, judged=100)
    assert fine.flags == () and fine.dropped == 0.0 and not fine.clipped
    # 2% passed, under the judge's 10% false-pass rate: the truth is near 0, and the draws say so reliably.
    low = corrected_pass_rate_interval(good, judged_passes=2, judged=100)
    assert low.clipped and not low.unreliable and low.estimate == 0.0
    assert len(low.flags) == 1 and low.flags[0].startswith("clipped to 0%")
    high = corrected_pass_rate_interval(good, judged_passes=100, judged=100)
    assert high.clipped and high.flags[0].startswith("clipped to 100%") and high.high == 1.0


def test_a_judge_perfect_on_few_labels_is_not_taken_as_certainly_perfect():
    """The multinomial bootstrap drew 30 of 30 in every resample, so the correction's interval was the production
    sample's alone; the posterior draws of TPR and TNR widen it."""
    perfect = ConfusionMatrix(tp=30, fn=0, fp=0, tn=30)
    rate = corrected_pass_rate_interval(perfect, judged_passes=8_000, judged=10_000)
    assert rate.estimate == 0.8 and rate.low <= 0.8 <= rate.high
    sample_only = proportion_interval(8_000, 10_000)
    assert rate.high - rate.low > 3 * (sample_only[1] - sample_only[0])


def test_bad_resamples_and_confidence_are_clear_errors():
    cm = ConfusionMatrix(tp=9, fn=1, fp=1, tn=9)
    for bad in (0, -5, 2.5):
        with pytest.raises(ValueError, match=f"resamples must be a whole number of at least 1, got {bad!r}"):
            corrected_pass_rate_interval(cm, judged_passes=3, judged=6, resamples=bad)
        with pytest.raises(ValueError, match="resamples must be a whole number of at least 1"):
            paired_bootstrap_difference_from_counts(1, 2, 3, resamples=bad)
    with pytest.raises(ValueError, match="confidence must be between 0 and 1, got 95"):
        paired_bootstrap_difference_from_counts(1, 2, 3, confidence=95)
    with pytest.raises(ValueError, match="only_b must be a non-negative integer, got -1"):
        paired_bootstrap_difference_from_counts(1, 2, -1)


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
    # NumPy arrays (booleans or 0/1) give the same numbers; the truth value of an array used to raise.
    assert paired_bootstrap_difference(np.array(a), np.array(b, dtype=int), seed=4) == (diff, low, high)
    with pytest.raises(ValueError, match="equal lengths"):
        paired_bootstrap_difference([True], [True, False])
    with pytest.raises(ValueError, match="paired outcomes are empty"):
        paired_bootstrap_difference(np.array([], dtype=bool), np.array([], dtype=bool))
    with pytest.raises(ValueError, match=r"b: expected booleans \(or 0/1\), got values such as 2$"):
        paired_bootstrap_difference([1, 0], [2, 0])


def test_the_paired_difference_takes_a_level_and_never_collapses_to_a_point():
    _, low_90, high_90 = paired_bootstrap_difference_from_counts(10, 65, 25, confidence=0.90)
    _, low_99, high_99 = paired_bootstrap_difference_from_counts(10, 65, 25, confidence=0.99)
    assert low_99 < low_90 < 0.15 < high_90 < high_99
    # 30 pairs and none discordant: the percentile bootstrap said the difference was exactly 0, [0, 0].
    diff, low, high = paired_bootstrap_difference_from_counts(0, 30, 0)
    assert diff == 0.0 and low < -0.05 and high > 0.05
    # All 30 flipped to B: the estimate +1 is where the interval ends.
    diff, low, high = paired_bootstrap_difference_from_counts(0, 0, 30)
    assert diff == high == 1.0 and 0.7 < low < 0.95


def test_the_paired_difference_covers_the_true_difference():
    """Every outcome of 30 and 200 pairs likely enough to matter (chance ≥ 1 in 10,000), weighted by its
    probability: the interval holds the true difference of pass rates in at least 93% of them."""
    coverage = {}
    for n in (30, 200):
        for only_a, only_b in ((0.0, 0.02), (0.05, 0.05), (0.1, 0.05)):
            shares = np.array([only_a, 1 - only_a - only_b, only_b])
            a, b = np.meshgrid(np.arange(n + 1), np.arange(n + 1), indexing="ij")
            outcomes = np.column_stack([a.ravel(), n - a.ravel() - b.ravel(), b.ravel()])
            outcomes = outcomes[outcomes[:, 1] >= 0]
            chance = multinomial.pmf(outcomes, n, shares)
            likely = chance >= 1e-4
            covered = [
                low <= only_b - only_a <= high
                for _, low, high in (
                    paired_bootstrap_difference_from_counts(*map(int, row), resamples=2_000) for row in outcomes[likely]
                )
            ]
            coverage[(n, only_a, only_b)] = chance[likely] @ np.array(covered)
    short = {key: round(value, 4) for key, value in coverage.items() if value < 0.93}
    assert not short, short


def test_the_label_budget_reaches_the_bound_with_the_fewest_labels():
    n = labels_needed(0.95, 0.90)
    # The planner's bound is the report's: at n labels and 95% of them right, the lower bound clears 90%; at n − 1
    # it does not (at the expected rate).
    assert proportion_interval(math.ceil(0.95 * n), n)[0] >= 0.899
    assert labels_needed(0.95, 0.90) < labels_needed(0.93, 0.90)  # a closer call needs more labels
    assert labels_needed(1.0, 0.9) == 36 and 0.025 ** (1 / 36) >= 0.9 > 0.025 ** (1 / 35)
    assert labels_needed(0.9, 0.9) is None and labels_needed(0.5, 0.9) is None and labels_needed(1.0, 1.0) is None
    with pytest.raises(ValueError):
        labels_needed(1.2, 0.9)


def test_one_label_of_each_class_does_not_meet_a_90_percent_bar_and_the_shortfall_says_how_many_more():
    """TPR 1/1 and TNR 1/1 meet 90% by their point values; their lower bounds are 2.5%."""
    shortfall = label_shortfall(ConfusionMatrix(tp=1, tn=1), min_tpr=0.9, min_tnr=0.9)
    tpr, tnr = shortfall["tpr"], shortfall["tnr"]
    assert not tpr.met and tpr.lower_bound == pytest.approx(0.025) and (tpr.needed, tpr.more) == (36, 35)
    assert tpr.text == "35 more pass labels (TPR 100%, lower bound 2.5% under 90%)"
    assert tnr.label == "fail" and tnr.text.startswith("35 more fail labels")


def test_the_shortfall_from_a_report_agrees_with_its_lower_bounds():
    report = {"tp": 100, "fn": 5, "fp": 3, "tn": 40, "tpr": 100 / 105}
    bounds = rate_lower_bounds(report)
    assert bounds == rate_lower_bounds(ConfusionMatrix(tp=100, fn=5, fp=3, tn=40))
    assert bounds["tpr"] == pytest.approx(binomtest(100, 105).proportion_ci(method="exact").low)
    shortfall = label_shortfall(report, min_tpr=0.85, min_tnr=0.9)
    assert shortfall["tpr"].met and shortfall["tpr"].more == 0
    assert shortfall["tpr"].text == f"TPR 95%: its lower bound {bounds['tpr']:.1%} clears 85%"
    tnr = shortfall["tnr"]
    assert not tnr.met and tnr.more == labels_needed(40 / 43, 0.9) - 43
    # With `more` extra fail labels judged as well as now, the lower bound clears the bar; with one fewer, not.
    assert proportion_interval(round(40 / 43 * (43 + tnr.more)), 43 + tnr.more)[0] >= 0.9 - 1e-3
    assert proportion_interval(round(40 / 43 * (42 + tnr.more)), 42 + tnr.more)[0] < 0.9
    # A rate at or under the bar cannot be rescued by labels; an undefined one says what is missing.
    below = label_shortfall(ConfusionMatrix(tp=8, fn=2), min_tpr=0.9, min_tnr=0.9)
    assert below["tpr"].more is None and "cannot clear it" in below["tpr"].text
    assert below["tnr"].text == "TNR is undefined: no fail label yet"
    with pytest.raises(ValueError, match="the report has no fp, tn"):
        rate_lower_bounds({"tp": 1, "fn": 0})
