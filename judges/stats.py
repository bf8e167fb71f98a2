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
from collections.abc import Iterable
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


def _multinomial_cells(cm: ConfusionMatrix, resamples: int, rng: np.random.Generator) -> np.ndarray:
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
    cells = _multinomial_cells(cm, resamples, np.random.default_rng(seed))
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
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


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
