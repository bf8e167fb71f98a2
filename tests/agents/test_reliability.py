"""pass@k / pass^k over agent tasks, checked against brute-force enumeration of k-subsets of trials."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from agents.reliability import MAX_K, TaskCounts, merge_counts, overall, task_estimate


def enumerate_subsets(n: int, c: int, k: int) -> tuple[float, float]:
    """(pass@k, pass^k) as the share of the k-subsets of n trials (c passing) with any / every trial passing."""
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(outcomes, k))
    return sum(any(s) for s in subsets) / len(subsets), sum(all(s) for s in subsets) / len(subsets)


@pytest.mark.parametrize(("n", "c"), [(n, c) for n in range(1, 9) for c in range(n + 1)])
def test_task_estimate_matches_enumeration_of_k_subsets(n, c):
    for k in range(1, n + 1):
        estimate = task_estimate(n, c, k)
        any_pass, all_pass = enumerate_subsets(n, c, k)
        assert estimate.pass_at_k == pytest.approx(any_pass)
        assert estimate.pass_hat_k == pytest.approx(all_pass)
        assert estimate.gap == pytest.approx(any_pass - all_pass)


@pytest.mark.parametrize(("n", "c"), [(n, c) for n in range(1, 9) for c in range(n + 1)])
def test_task_intervals_contain_their_estimate_and_stay_in_unit_range(n, c):
    for k in range(1, n + 1):
        e = task_estimate(n, c, k)
        for value, (low, high) in ((e.pass_at_k, e.pass_at_k_ci), (e.pass_hat_k, e.pass_hat_k_ci)):
            assert 0.0 <= low <= value <= high <= 1.0


def test_task_with_fewer_trials_than_k_has_no_estimate():
    estimate = task_estimate(3, 2, 4)
    assert estimate.pass_at_k is None and estimate.pass_hat_k is None and estimate.gap is None
    assert estimate.pass_at_k_ci is None and estimate.pass_hat_k_ci is None


def test_all_passing_task_keeps_a_real_interval_below_one():
    # Bootstrapping trials would give [1, 1] here; five passes out of five do not prove a perfect agent.
    estimate = task_estimate(5, 5, 1)
    assert estimate.pass_at_k == 1.0
    assert estimate.pass_at_k_ci[0] == pytest.approx(0.5655, abs=1e-3)  # Wilson lower bound of 5/5
    assert estimate.pass_at_k_ci[1] == 1.0


def test_overall_is_the_mean_over_tasks_with_at_least_k_trials_matching_enumeration():
    tasks = [(10, 7), (10, 0), (5, 5), (3, 1), (10, 10), (6, 3)]
    rows = overall([TaskCounts(n, c) for n, c in tasks], resamples=2000)
    assert [row.k for row in rows] == list(range(1, MAX_K + 1))
    for row in rows:
        counted = [(n, c) for n, c in tasks if n >= row.k]
        assert row.tasks == len(counted)
        brute = [enumerate_subsets(n, c, row.k) for n, c in counted]
        assert row.pass_at_k == pytest.approx(np.mean([b[0] for b in brute]))
        assert row.pass_hat_k == pytest.approx(np.mean([b[1] for b in brute]))
        assert row.gap == pytest.approx(row.pass_at_k - row.pass_hat_k)
    assert [row.tasks for row in rows] == [6, 6, 6, 5, 5, 4, 3, 3, 3, 3]


def test_overall_intervals_contain_the_estimate_and_pass_at_k_rises_while_pass_hat_k_falls():
    tasks = [TaskCounts(10, c) for c in (2, 4, 5, 6, 7, 8, 9, 3, 6, 7)]
    rows = overall(tasks)
    for row in rows:
        assert row.pass_at_k_ci[0] <= row.pass_at_k <= row.pass_at_k_ci[1]
        assert row.pass_hat_k_ci[0] <= row.pass_hat_k <= row.pass_hat_k_ci[1]
        assert row.gap_ci[0] <= row.gap <= row.gap_ci[1]
        if row.k <= 5:  # ten different tasks: a real spread (by k = 10 every task passed once, none every time)
            assert row.pass_hat_k_ci[1] - row.pass_hat_k_ci[0] > 0
    assert all(a.pass_at_k <= b.pass_at_k for a, b in itertools.pairwise(rows))
    assert all(a.pass_hat_k >= b.pass_hat_k for a, b in itertools.pairwise(rows))
    assert rows[0].gap == pytest.approx(0.0)  # one trial: succeeding once is succeeding every time
    assert rows[9].pass_at_k == rows[9].pass_at_k_ci[0] == 1.0  # every task passed at least once in 10 trials


def test_overall_bootstrap_is_seeded_and_grouping_equal_tasks_changes_nothing():
    spread = [TaskCounts(8, c) for c in (1, 3, 3, 5, 8, 8)]
    grouped = [TaskCounts(8, 1), TaskCounts(8, 3, tasks=2), TaskCounts(8, 5), TaskCounts(8, 8, tasks=2)]
    assert overall(spread, seed=7) == overall(spread, seed=7) == overall(grouped, seed=7)
    assert overall(spread, seed=7)[2].pass_at_k_ci != overall(spread, seed=8)[2].pass_at_k_ci


def test_overall_bootstrap_interval_agrees_with_a_per_task_loop_bootstrap():
    """The multinomial shortcut against the textbook: resample task indices, average their estimates."""
    tasks = [(10, c) for c in (0, 1, 4, 5, 5, 9, 10, 10)] + [(4, 2), (4, 4)]
    k = 3
    rows = overall([TaskCounts(n, c) for n, c in tasks], resamples=20_000, seed=1)
    values = np.array([enumerate_subsets(n, c, k)[1] for n, c in tasks])
    rng = np.random.default_rng(99)
    means = values[rng.integers(0, len(values), size=(20_000, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    assert rows[k - 1].pass_hat_k_ci[0] == pytest.approx(low, abs=0.02)
    assert rows[k - 1].pass_hat_k_ci[1] == pytest.approx(high, abs=0.02)


def test_no_tasks_gives_empty_rows():
    rows = overall([])
    assert len(rows) == MAX_K
    assert all(row.tasks == 0 and row.pass_at_k is None and row.pass_at_k_ci is None for row in rows)


def test_tasks_with_only_errors_do_not_count():
    assert merge_counts([TaskCounts(0, 0, tasks=3), TaskCounts(4, 1)]) == [TaskCounts(4, 1, 1)]
    assert overall([TaskCounts(0, 0)])[0].tasks == 0


def test_one_task_uses_its_own_interval_not_a_degenerate_bootstrap():
    rows = overall([TaskCounts(6, 3)])
    assert [row.tasks for row in rows] == [1] * 6 + [0] * 4
    first = rows[0]
    assert first.pass_at_k == 0.5
    assert first.pass_at_k_ci == task_estimate(6, 3, 1).pass_at_k_ci
    assert first.pass_at_k_ci[1] - first.pass_at_k_ci[0] > 0.4
    assert rows[1].gap_ci[0] <= rows[1].gap <= rows[1].gap_ci[1]
    assert rows[6].pass_at_k is None


@pytest.mark.parametrize("c", [0, 10])
def test_tasks_that_always_or_never_pass_have_no_gap(c):
    rows = overall([TaskCounts(10, c, tasks=4)])
    for row in rows:
        assert row.pass_at_k == row.pass_hat_k == (1.0 if c else 0.0)
        assert row.gap == 0.0
        assert row.gap_ci == (0.0, 0.0)


def test_bad_counts_are_refused():
    with pytest.raises(ValueError, match="0 <= c <= n"):
        overall([TaskCounts(3, 4)])
    with pytest.raises(ValueError, match="max_k"):
        overall([TaskCounts(3, 1)], max_k=0)
