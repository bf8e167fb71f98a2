"""pass@k and pass^k of agent tasks, per task and over tasks, with 95% intervals. No Django.

Definitions (DESIGN.md): for a task with n graded trials of which c passed,
pass@k = 1 − C(n−c, k)/C(n, k) (at least one of k trials succeeds) and pass^k = C(c, k)/C(n, k) (all k succeed),
the unbiased estimators of judges.stats. Both are undefined for k > n. Overall values are means over the tasks
that have at least k graded trials, so the number of tasks behind each k is reported with it.

Intervals:
- Overall: a seeded percentile bootstrap that resamples *tasks* (the independent unit; trials of one task share
  its difficulty). A task's estimate already carries its own trial noise, so resampling whole tasks captures both
  the spread between tasks and the noise within them (the cluster bootstrap). Tasks with the same (n, c) have the
  same estimates, so a resample is a multinomial draw over the distinct (n, c) pairs: exact, and its cost does not
  grow with the number of tasks. One set of draws serves every k and both curves, so the gap's interval is paired.
- Per task: trials are treated as independent Bernoulli(p) draws, so the task's pass@k is 1 − (1 − p)^k and its
  pass^k is p^k, both monotone in p. The Wilson interval of p from c of n, pushed through those maps, is an
  interval for the task's pass@k / pass^k with the Wilson coverage (monotone maps keep coverage). Bootstrapping
  5–10 trials would not do: with c = n every resample passes and the interval collapses to a point. At k close to
  n the unbiased point estimate can sit just outside the mapped interval (it is a noisy estimate from few trials);
  the interval is widened to include it rather than show a point outside its own interval.
- With a single task the bootstrap over tasks has nothing to resample, so the overall interval is that task's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from judges.stats import DEFAULT_RESAMPLES, pass_at_k, pass_hat_k, wilson_interval

MAX_K = 10
CONFIDENCE = 0.95
Interval = tuple[float, float]


@dataclass(frozen=True)
class TaskCounts:
    """How many tasks have n graded trials with c passes (tasks with the same counts have the same estimates)."""

    n: int
    c: int
    tasks: int = 1


@dataclass(frozen=True)
class KRow:
    """One k of the overall table. Values are None when no task has k graded trials."""

    k: int
    tasks: int  # tasks with at least k graded trials: the ones averaged at this k
    pass_at_k: float | None
    pass_at_k_ci: Interval | None
    pass_hat_k: float | None
    pass_hat_k_ci: Interval | None
    gap: float | None  # pass@k − pass^k: how much more often an agent succeeds once than every time
    gap_ci: Interval | None


@dataclass(frozen=True)
class TaskEstimate:
    k: int
    pass_at_k: float | None
    pass_at_k_ci: Interval | None
    pass_hat_k: float | None
    pass_hat_k_ci: Interval | None

    @property
    def gap(self) -> float | None:
        if self.pass_at_k is None or self.pass_hat_k is None:
            return None
        return self.pass_at_k - self.pass_hat_k


def _hull(interval: Interval, point: float) -> Interval:
    return (min(interval[0], point), max(interval[1], point))


def task_estimate(n: int, c: int, k: int) -> TaskEstimate:
    """One task's pass@k and pass^k with the mapped Wilson intervals (see the module docstring); None for k > n."""
    at, hat = pass_at_k(n, c, k), pass_hat_k(n, c, k)
    if at is None or hat is None:
        return TaskEstimate(k=k, pass_at_k=None, pass_at_k_ci=None, pass_hat_k=None, pass_hat_k_ci=None)
    p_low, p_high = wilson_interval(c, n)  # n >= k >= 1, so never None
    at_ci = (1.0 - (1.0 - p_low) ** k, 1.0 - (1.0 - p_high) ** k)
    hat_ci = (p_low**k, p_high**k)
    return TaskEstimate(
        k=k, pass_at_k=at, pass_at_k_ci=_hull(at_ci, at), pass_hat_k=hat, pass_hat_k_ci=_hull(hat_ci, hat)
    )


def _single_task_gap_interval(n: int, c: int, k: int, gap: float) -> Interval:
    """The range of 1 − (1 − p)^k − p^k over the task's Wilson interval of p (the map is not monotone: it peaks
    at p = 1/2), widened to include the point estimate."""
    p_low, p_high = wilson_interval(c, n)
    grid = np.linspace(p_low, p_high, 2001)
    values = 1.0 - (1.0 - grid) ** k - grid**k
    return _hull((float(values.min()), float(values.max())), gap)


def merge_counts(counts: Iterable[TaskCounts]) -> list[TaskCounts]:
    """Add up tasks with equal (n, c); drops tasks without a graded trial (n = 0: nothing to estimate)."""
    merged: dict[tuple[int, int], int] = {}
    for row in counts:
        if row.n < 0 or not 0 <= row.c <= row.n or row.tasks < 0:
            raise ValueError(f"need 0 <= c <= n and tasks >= 0, got n={row.n}, c={row.c}, tasks={row.tasks}")
        if row.n and row.tasks:
            merged[(row.n, row.c)] = merged.get((row.n, row.c), 0) + row.tasks
    return [TaskCounts(n=n, c=c, tasks=t) for (n, c), t in sorted(merged.items())]


def overall(
    counts: Iterable[TaskCounts],
    *,
    max_k: int = MAX_K,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> list[KRow]:
    """pass@k, pass^k and their gap for k = 1..max_k, each the mean over tasks with at least k graded trials, with
    percentile-bootstrap intervals over tasks. Rows for k where no task counts have None values and tasks = 0."""
    if max_k < 1:
        raise ValueError(f"max_k must be at least 1, got {max_k}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    groups = merge_counts(counts)
    empty = [KRow(k, 0, None, None, None, None, None, None) for k in range(1, max_k + 1)]
    if not groups:
        return empty
    weights = np.array([g.tasks for g in groups], dtype=np.float64)
    total_tasks = int(weights.sum())
    ks = range(1, max_k + 1)
    # values[i, j]: pass@k (or pass^k) of group j at k = ks[i]; NaN where the group has fewer than k trials.
    at = np.array([[pass_at_k(g.n, g.c, k) if k <= g.n else np.nan for g in groups] for k in ks], dtype=np.float64)
    hat = np.array([[pass_hat_k(g.n, g.c, k) if k <= g.n else np.nan for g in groups] for k in ks], dtype=np.float64)
    counted = np.array([[k <= g.n for g in groups] for k in ks], dtype=np.float64)  # (K, G)

    draws = None
    if total_tasks > 1:
        rng = np.random.default_rng(seed)
        # A bootstrap resample of the tasks: how many copies of each (n, c) group it holds.
        draws = rng.multinomial(total_tasks, weights / total_tasks, size=resamples).astype(np.float64)  # (R, G)
    tail = (1 - confidence) / 2 * 100

    rows = []
    for i, k in enumerate(ks):
        mask = counted[i]
        tasks_k = int((weights * mask).sum())
        if tasks_k == 0:
            rows.append(empty[i])
            continue
        at_k, hat_k = np.nan_to_num(at[i]), np.nan_to_num(hat[i])
        point_at = float((weights * at_k).sum() / tasks_k)
        point_hat = float((weights * hat_k).sum() / tasks_k)
        if tasks_k == 1:
            only = groups[int(np.argmax(mask * weights))]
            single = task_estimate(only.n, only.c, k)
            gap_ci = _single_task_gap_interval(only.n, only.c, k, point_at - point_hat)
            rows.append(
                KRow(k, 1, point_at, single.pass_at_k_ci, point_hat, single.pass_hat_k_ci, point_at - point_hat, gap_ci)
            )
            continue
        assert draws is not None
        drawn = draws @ mask  # tasks counted at this k in each resample
        # A resample that drew no task with k trials has no mean at this k; it is left out (rare unless few
        # tasks reach k, which the tasks column shows).
        valid = drawn > 0
        sum_at, sum_hat = draws @ (at_k * mask), draws @ (hat_k * mask)
        mean_at = sum_at[valid] / drawn[valid]
        mean_hat = sum_hat[valid] / drawn[valid]
        low_high = np.percentile(np.vstack([mean_at, mean_hat, mean_at - mean_hat]), [tail, 100 - tail], axis=1).T
        at_ci, hat_ci, gap_ci = (tuple(float(v) for v in pair) for pair in low_high)
        rows.append(KRow(k, tasks_k, point_at, at_ci, point_hat, hat_ci, point_at - point_hat, gap_ci))
    return rows


@dataclass(frozen=True)
class TaskRow:
    """One task's line in the tasks table: its counts, pass@1 with its Wilson interval, and pass@k / pass^k."""

    task_id: str
    n: int
    c: int
    errors: int
    pass_at_1: float | None
    pass_at_1_ci: Interval | None
    at_k: TaskEstimate


def task_row(*, task_id: str, n: int, c: int, errors: int, k: int) -> TaskRow:
    """The row of a task with n graded trials of which c passed (and `errors` that could not be graded)."""
    return TaskRow(
        task_id=task_id,
        n=n,
        c=c,
        errors=errors,
        pass_at_1=c / n if n else None,
        pass_at_1_ci=wilson_interval(c, n),
        at_k=task_estimate(n, c, k) if n else TaskEstimate(k, None, None, None, None),
    )
