"""Agreement between a judge and the expert, with confidence intervals. Django-free.

Definitions (DESIGN.md, "Statistics"): pass is the positive class, so TPR = P(judge pass | expert pass) and
TNR = P(judge fail | expert fail); precision, recall and F1 are also given for the fail class (defect detection,
recall_fail = TNR). Intervals are 95%: a seeded bootstrap for anything computed from a confusion matrix, Wilson for
a single proportion. A rate whose denominator is zero is undefined (None), never 0 or 1.

The bootstrap resamples the four cells of the confusion matrix at once (a multinomial draw per resample) and
computes every metric on arrays, so 20,000 resamples cost milliseconds rather than seconds of Python loops.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PASS, FAIL = "pass", "fail"
METRICS = ("tpr", "tnr", "precision_fail", "recall_fail", "f1_fail", "accuracy", "kappa")
DEFAULT_RESAMPLES = 20_000
CONFIDENCE = 0.95
Z_95 = 1.959963984540054


@dataclass(frozen=True)
class ConfusionMatrix:
    """Counts of (expert, judge) verdict pairs; pass is the positive class."""

    tp: int = 0  # expert pass, judge pass
    fn: int = 0  # expert pass, judge fail
    fp: int = 0  # expert fail, judge pass
    tn: int = 0  # expert fail, judge fail

    def __post_init__(self) -> None:
        for name in ("tp", "fn", "fp", "tn"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")

    @property
    def n(self) -> int:
        return self.tp + self.fn + self.fp + self.tn

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> ConfusionMatrix:
        """From (expert verdict, judge verdict) pairs, each "pass" or "fail"."""
        counts = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
        cell = {(PASS, PASS): "tp", (PASS, FAIL): "fn", (FAIL, PASS): "fp", (FAIL, FAIL): "tn"}
        for index, pair in enumerate(pairs):
            try:
                counts[cell[pair]] += 1
            except (KeyError, TypeError):
                raise ValueError(
                    f"pair {index}: expected (expert, judge) verdicts 'pass'/'fail', got {pair!r}"
                ) from None
        return cls(**counts)


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def metrics(cm: ConfusionMatrix) -> dict[str, float | None]:
    """Point estimates of every rate in METRICS; None where a rate is undefined (zero denominator)."""
    tp, fn, fp, tn, n = cm.tp, cm.fn, cm.fp, cm.tn, cm.n
    recall_fail = _ratio(tn, tn + fp)
    return {
        "tpr": _ratio(tp, tp + fn),
        "tnr": recall_fail,
        "precision_fail": _ratio(tn, tn + fn),
        "recall_fail": recall_fail,
        # 2·TP/(2·TP + FP + FN) for the fail class: 0 when judge or expert never says fail but the other does
        # (as scikit-learn's zero_division gives), undefined only when neither ever does.
        "f1_fail": _ratio(2 * tn, 2 * tn + fn + fp),
        "accuracy": _ratio(tp + tn, n),
        "kappa": _kappa(tp, fn, fp, tn),
    }


def _kappa(tp: float, fn: float, fp: float, tn: float) -> float | None:
    n = tp + fn + fp + tn
    if not n:
        return None
    observed = (tp + tn) / n
    expected = ((tp + fn) * (tp + fp) + (fp + tn) * (fn + tn)) / (n * n)
    if expected == 1:
        # Both used a single class, the same one: κ is 0/0 (scikit-learn returns NaN).
        return None
    return (observed - expected) / (1 - expected)


def _metric_arrays(cells: np.ndarray) -> dict[str, np.ndarray]:
    """Every metric for each row of `cells` (columns tp, fn, fp, tn); NaN where undefined."""
    tp, fn, fp, tn = (cells[:, i].astype(np.float64) for i in range(4))
    n = tp + fn + fp + tn
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = tp / (tp + fn)
        tnr = tn / (tn + fp)
        precision_fail = tn / (tn + fn)
        f1_fail = 2 * tn / (2 * tn + fn + fp)
        accuracy = (tp + tn) / n
        expected = ((tp + fn) * (tp + fp) + (fp + tn) * (fn + tn)) / (n * n)
        kappa = np.where(expected < 1, (accuracy - expected) / (1 - expected), np.nan)
    return {
        "tpr": tpr,
        "tnr": tnr,
        "precision_fail": precision_fail,
        "recall_fail": tnr,
        "f1_fail": f1_fail,
        "accuracy": accuracy,
        "kappa": kappa,
    }


def multinomial_cells(cm: ConfusionMatrix, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """`resamples` multinomial draws of n pairs over the four cells, as conditional binomials: one vectorised draw
    per cell, several times faster than Generator.multinomial, which loops over the rows."""
    counts = np.array([cm.tp, cm.fn, cm.fp, cm.tn], dtype=np.float64)
    cells = np.empty((resamples, 4), dtype=np.int64)
    remaining = np.full(resamples, cm.n, dtype=np.int64)
    left = float(cm.n)
    for i in range(3):
        share = counts[i] / left if left > 0 else 0.0
        cells[:, i] = rng.binomial(remaining, min(share, 1.0))
        remaining -= cells[:, i]
        left -= counts[i]
    cells[:, 3] = remaining
    return cells


def bootstrap_intervals(
    cm: ConfusionMatrix, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap interval of each metric: resample the n verdict pairs with replacement, which is a
    multinomial draw over the four cells. A metric undefined in a resample (its denominator drew zero) is left out
    of that metric's percentiles; None when the metric is undefined on the data itself."""
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    point = metrics(cm)
    if cm.n == 0:
        return dict.fromkeys(METRICS)
    cells = multinomial_cells(cm, resamples, np.random.default_rng(seed))
    tail = (1 - confidence) / 2 * 100
    arrays = _metric_arrays(cells)
    names = [name for name in METRICS if name != "recall_fail"]  # recall_fail is tnr
    stacked = np.vstack([arrays[name] for name in names])
    if not np.isnan(stacked).any():
        bounds = dict(zip(names, np.percentile(stacked, [tail, 100 - tail], axis=1).T, strict=True))
    else:
        bounds = {}
        for name, values in zip(names, stacked, strict=True):
            finite = values[~np.isnan(values)]
            if finite.size:
                bounds[name] = np.percentile(finite, [tail, 100 - tail])
    bounds["recall_fail"] = bounds.get("tnr")
    intervals: dict[str, tuple[float, float] | None] = {}
    for name in METRICS:
        found = bounds.get(name)
        intervals[name] = None if point[name] is None or found is None else (float(found[0]), float(found[1]))
    return intervals


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion; None when n is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return None
    low, high = _wilson_bounds(successes / n, n, z)
    return (max(0.0, low), min(1.0, high))


def _wilson_bounds(rate: float, n: int, z: float) -> tuple[float, float]:
    denominator = 1 + z * z / n
    centre = (rate + z * z / (2 * n)) / denominator
    half = z * math.sqrt(rate * (1 - rate) / n + z * z / (4 * n * n)) / denominator
    return centre - half, centre + half


def alignment_report(
    cm: ConfusionMatrix, *, errors: int = 0, split: str = "", resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> dict[str, Any]:
    """The alignment report with DESIGN.md's keys: n, the four cells, each metric, `ci` (metric → [low, high] or
    None), `errors` (judgments that failed permanently: neither pass nor fail, so outside the matrix) and `split`."""
    if errors < 0:
        raise ValueError(f"errors must be non-negative, got {errors}")
    intervals = bootstrap_intervals(cm, resamples=resamples, seed=seed)
    return {
        "n": cm.n,
        "tp": cm.tp,
        "fp": cm.fp,
        "tn": cm.tn,
        "fn": cm.fn,
        **metrics(cm),
        "ci": {name: None if interval is None else [interval[0], interval[1]] for name, interval in intervals.items()},
        "errors": errors,
        "split": split,
    }


# --- beyond one confusion matrix (issue 5's statistics) ------------------------------------------------------------


def corrected_pass_rate(tpr: float, tnr: float, observed_pass_rate: float) -> float | None:
    """Rogan–Gladen: the true pass rate behind a judge's observed one, θ = (p_obs + TNR − 1) / (TPR + TNR − 1),
    clipped to [0, 1]. None when TPR + TNR ≤ 1: a judge no better than chance says nothing about the truth."""
    denominator = tpr + tnr - 1
    if denominator <= 0:
        return None
    return min(1.0, max(0.0, (observed_pass_rate + tnr - 1) / denominator))


@dataclass(frozen=True)
class CorrectedRate:
    estimate: float
    low: float
    high: float
    observed: float


def corrected_pass_rate_interval(
    cm: ConfusionMatrix,
    *,
    judged_passes: int,
    judged: int,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> CorrectedRate | None:
    """The corrected pass rate of a production sample (`judged_passes` of `judged` traces passed by the judge) with
    a bootstrap interval that resamples both sources of error: the labelled set the judge's TPR/TNR come from (a
    multinomial over the four cells) and the production sample (a binomial). Resamples where the correction is
    undefined are dropped. None when the point estimate is undefined (no labelled pass or fail, TPR + TNR ≤ 1, or
    an empty sample)."""
    point = corrected_point(cm, judged_passes=judged_passes, judged=judged)
    if point is None:
        return None
    observed, estimate = point
    rng = np.random.default_rng(seed)
    tpr, tnr = judge_rate_draws(cm, resamples, rng)
    return corrected_interval_from_draws(
        tpr, tnr, observed=observed, estimate=estimate, judged=judged, rng=rng, confidence=confidence
    )


def corrected_point(cm: ConfusionMatrix, *, judged_passes: int, judged: int) -> tuple[float, float] | None:
    """(observed pass rate, corrected pass rate) of a production sample; None when the correction is undefined."""
    if judged < 0 or not 0 <= judged_passes <= judged:
        raise ValueError(f"need 0 <= judged_passes <= judged, got {judged_passes} of {judged}")
    point = metrics(cm)
    if judged == 0 or point["tpr"] is None or point["tnr"] is None:
        return None
    observed = judged_passes / judged
    estimate = corrected_pass_rate(point["tpr"], point["tnr"], observed)
    return None if estimate is None else (observed, estimate)


def judge_rate_draws(cm: ConfusionMatrix, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap draws of the judge's TPR and TNR: the labelled set resampled as a multinomial over its cells
    (nan where a draw has no labelled pass or fail)."""
    tp, fn, fp, tn = multinomial_cells(cm, resamples, rng).astype(np.float64).T
    with np.errstate(divide="ignore", invalid="ignore"):
        return tp / (tp + fn), tn / (tn + fp)


def corrected_interval_from_draws(
    tpr: np.ndarray,
    tnr: np.ndarray,
    *,
    observed: float,
    estimate: float,
    judged: int,
    rng: np.random.Generator,
    confidence: float = CONFIDENCE,
) -> CorrectedRate | None:
    """The rest of `corrected_pass_rate_interval` once the judge's rates are drawn: the production sample's
    binomial, the correction per resample (dropping those where it is undefined) and the percentiles."""
    observed_draws = rng.binomial(judged, observed, size=len(tpr)) / judged
    with np.errstate(divide="ignore", invalid="ignore"):
        denominator = tpr + tnr - 1
        theta = np.clip((observed_draws + tnr - 1) / denominator, 0.0, 1.0)
    valid = theta[(denominator > 0) & np.isfinite(theta)]
    if valid.size == 0:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(valid, [tail, 100 - tail])
    return CorrectedRate(estimate=estimate, low=float(low), high=float(high), observed=observed)


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Unbiased pass@k from n trials with c successes: 1 − C(n−c, k)/C(n, k), the chance that at least one of k
    trials drawn without replacement succeeds. None when k > n (not estimable from n trials)."""
    _check_trials(n, c, k)
    if k > n:
        return None
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float | None:
    """pass^k: C(c, k)/C(n, k), the chance that all of k trials drawn without replacement succeed. None when k > n."""
    _check_trials(n, c, k)
    if k > n:
        return None
    return math.comb(c, k) / math.comb(n, k)


def _check_trials(n: int, c: int, k: int) -> None:
    if n < 0 or not 0 <= c <= n or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value for paired outcomes: `only_a` pairs where only A passed, `only_b` where only
    B did. Under "no difference" each discordant pair is a fair coin. 1.0 when there is no discordant pair."""
    if only_a < 0 or only_b < 0:
        raise ValueError(f"counts must be non-negative, got {only_a} and {only_b}")
    discordant = only_a + only_b
    if discordant == 0:
        return 1.0
    from scipy.stats import binom  # SciPy is heavy to import; only comparisons need it

    return float(min(1.0, 2 * binom.cdf(min(only_a, only_b), discordant, 0.5)))


def paired_bootstrap_difference(
    a: Sequence[bool], b: Sequence[bool], *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """Pass rate of B minus pass rate of A on the same traces, with a percentile bootstrap interval that resamples
    traces (keeping each trace's pair together). Raises ValueError on unequal or empty inputs."""
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need equal lengths, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("paired outcomes are empty")
    diffs = np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64)
    only_a, same, only_b = (int((diffs == v).sum()) for v in (-1.0, 0.0, 1.0))
    return paired_bootstrap_difference_from_counts(only_a, same, only_b, resamples=resamples, seed=seed)


def paired_bootstrap_difference_from_counts(
    only_a: int, same: int, only_b: int, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0
) -> tuple[float, float, float]:
    """`paired_bootstrap_difference` from the three counts it depends on: pairs where only A passed (−1), where
    both or neither did (0), where only B did (+1). No list per trace, so 200,000 pairs cost what 20 do. Raises
    ValueError when there is no pair."""
    n = only_a + same + only_b
    if n == 0:
        raise ValueError("paired outcomes are empty")
    # The difference only depends on how often each of the three values (-1, 0, 1) is drawn: a multinomial.
    counts = np.array([only_a, same, only_b], dtype=np.float64)
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=resamples)
    means = (draws[:, 2] - draws[:, 0]) / n
    low, high = np.percentile(means, [2.5, 97.5])
    return (only_b - only_a) / n, float(low), float(high)


def labels_needed(
    expected_rate: float, target_lower_bound: float, *, z: float = Z_95, limit: int = 100_000
) -> int | None:
    """How many labels of one class make the Wilson lower bound of a rate expected to be `expected_rate` reach
    `target_lower_bound`: pass labels for TPR, fail labels for TNR. None when no number up to `limit` does (the
    expected rate is not above the target)."""
    if not 0 <= target_lower_bound < 1 or not 0 <= expected_rate <= 1:
        raise ValueError(f"rates must be in [0, 1], got expected {expected_rate} and target {target_lower_bound}")
    if expected_rate <= target_lower_bound:
        return None
    low, high = 1, limit
    if _wilson_bounds(expected_rate, high, z)[0] < target_lower_bound:
        return None
    while low < high:  # the bound grows with n for a fixed rate: binary search for the smallest n
        mid = (low + high) // 2
        if _wilson_bounds(expected_rate, mid, z)[0] >= target_lower_bound:
            high = mid
        else:
            low = mid + 1
    return low
