"""Agreement between a judge and the expert, with confidence intervals. Django-free.

Definitions (DESIGN.md, "Statistics"): pass is the positive class, so TPR = P(judge pass | expert pass) and
TNR = P(judge fail | expert fail); precision, recall and F1 are also given for the fail class (defect detection,
recall_fail = TNR). A rate whose denominator is zero is undefined (None), never 0 or 1.

Every interval is 95% and none claims a certainty the data do not give, at 0% and 100% included:
- A single proportion (TPR, TNR, precision_fail, recall_fail, accuracy; a monitoring bucket's pass rate; a suite's
  pass rate) gets the Clopper–Pearson ("exact") interval, `proportion_interval`: its coverage is at least 95% for
  every n and every true rate, where Wilson's dips below at the edges (93.3% at n = 200 and a true rate of 98%:
  200 of 200 gives a Wilson lower bound of 98.1%). At 30 of 30 it gives [0.884, 1] (Wilson [0.886, 1]).
- κ and F1, which depend on all four cells, get a Bayesian bootstrap with a prior, `posterior_intervals`: the
  cells' shares are drawn from the Dirichlet posterior (counts + 1/3 each) and the metric's 2.5th and 97.5th
  percentiles taken. The percentile bootstrap and the plain Bayesian bootstrap give an empty cell no weight in any
  resample, so a perfect matrix gives κ [1, 1]; BCa cannot mend that (every resample equals the estimate, so its
  bias correction is infinite). Why 1/3 (Kerman's neutral prior): see CELL_PRIOR.
- A paired difference of pass rates (two judge versions, two suite runs) gets the same kind of bootstrap over its
  three outcomes (only A, both or neither, only B), `paired_bootstrap_difference`.
- The corrected pass rate draws the judge's TPR and TNR from the same posterior and the production pass rate from
  its own, and says when its estimate was clipped or many of its draws were dropped (`CorrectedRate.flags`).
Posterior draws are seeded, 20,000 by default (DESIGN.md asks for at least 10,000), and computed on arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

PASS, FAIL = "pass", "fail"
METRICS = ("tpr", "tnr", "precision_fail", "recall_fail", "f1_fail", "accuracy", "kappa")
# The metrics that are one proportion (successes of n), with the Clopper–Pearson interval; the others (f1_fail,
# kappa) get the posterior bootstrap.
PROPORTIONS = ("tpr", "tnr", "precision_fail", "recall_fail", "accuracy")
DEFAULT_RESAMPLES = 20_000
CONFIDENCE = 0.95
Z_95 = 1.959963984540054
# The Dirichlet prior per cell of the confusion matrix (and of a production sample's pass/fail). 1/3 is Kerman's
# neutral prior: its posterior median sits near the observed share, so it pulls κ and F1 less towards the middle
# than Jeffreys' 1/2 or the uniform 1, and still gives an empty cell some weight. Simulated over 10–200 labels per
# class and TPR, TNR from 70% to 98%, it kept κ's and F1's coverage at 92–98%, and at 94.6% or more with 30 and 200
# per class and rates of 85% and 98% (tests/judges/test_stats.py); 1/2 fell to 88% (κ, 15 per class, both rates
# 98%), 1/4 to 88% (F1, 60 per class), the percentile bootstrap to 45% (30 labels in all, both rates 98%).
CELL_PRIOR = 1 / 3
# The prior per outcome of a paired difference (only A passed, both or neither, only B passed). A difference of
# two shares is not pulled down by a prior as κ is, and small discordant counts need more of it: over 20–200 pairs
# and discordant shares of 0–20%, the uniform prior 1 covered at least 93% (97% on average), 1/2 91%, 1/3 87%, the
# percentile bootstrap 45% (with no discordant pair it gave [0, 0]).
PAIRED_PRIOR = 1.0


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

    @classmethod
    def from_report(cls, report: Mapping[str, Any]) -> ConfusionMatrix:
        """The counts of an alignment report (its tp, fn, fp and tn keys)."""
        missing = [key for key in ("tp", "fn", "fp", "tn") if key not in report]
        if missing:
            raise ValueError(f"the report has no {', '.join(missing)}: expected an alignment report's counts")
        return cls(tp=report["tp"], fn=report["fn"], fp=report["fp"], tn=report["tn"])


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
    """Every metric for each row of `cells` (last axis: tp, fn, fp, tn; counts or shares, as every metric is a
    ratio); NaN where undefined."""
    tp, fn, fp, tn = (cells[..., i].astype(np.float64) for i in range(4))
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


def _check_draws(resamples: int, confidence: float) -> None:
    if not isinstance(resamples, int | np.integer) or isinstance(resamples, bool) or resamples < 1:
        raise ValueError(f"resamples must be a whole number of at least 1, got {resamples!r}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")


# --- single proportions: Clopper–Pearson ---------------------------------------------------------------------------


def proportion_intervals(
    successes: ArrayLike, n: ArrayLike, *, confidence: float = CONFIDENCE
) -> tuple[np.ndarray, np.ndarray]:
    """Clopper–Pearson bounds of successes/n, elementwise (NaN where n is 0). `successes` may be fractional (the
    label planner asks about an expected rate times n)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    from scipy.special import betaincinv  # SciPy is heavy to import; the web pages that only read reports skip it

    x = np.asarray(successes, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    if np.any(total < 0) or np.any(x < 0) or np.any(x > total):
        raise ValueError("need 0 <= successes <= n")
    tail = (1 - confidence) / 2
    # The bounds are Beta quantiles; at 0 successes the lower bound is 0, at n the upper bound is 1 (the exact
    # interval's ends), and 1e-300 keeps betaincinv's shape parameters positive on the branch np.where discards.
    with np.errstate(invalid="ignore", divide="ignore"):
        low = np.where(x > 0, betaincinv(np.maximum(x, 1e-300), total - x + 1, tail), 0.0)
        high = np.where(x < total, betaincinv(x + 1, np.maximum(total - x, 1e-300), 1 - tail), 1.0)
    empty = total == 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def proportion_interval(successes: int, n: int, *, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The Clopper–Pearson interval of successes/n; None when n is 0. Its coverage is at least `confidence` for
    every n and true rate (see the module docstring for why not Wilson)."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return None
    low, high = proportion_intervals(successes, n, confidence=confidence)
    return (float(low), float(high))


def proportion_counts(cells: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """For each metric in PROPORTIONS, its (successes, n) per row of `cells` (columns tp, fn, fp, tn)."""
    tp, fn, fp, tn = (np.asarray(cells)[..., i] for i in range(4))
    return {
        "tpr": (tp, tp + fn),
        "tnr": (tn, tn + fp),
        "precision_fail": (tn, tn + fn),
        "recall_fail": (tn, tn + fp),
        "accuracy": (tp + tn, tp + fn + fp + tn),
    }


def wilson_interval(successes: int, n: int, *, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion; None when n is 0. Its coverage dips below nominal near 0% and 100%
    (see the module docstring): the alignment report, monitoring and suites use `proportion_interval`."""
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


# --- κ and F1: the posterior bootstrap over the four cells ---------------------------------------------------------

POSTERIOR_METRICS = ("f1_fail", "kappa")
# Rows of cells × resamples drawn at once: bounds the memory of `posterior_intervals` over many matrices.
_DRAWS_PER_CHUNK = 2_000_000


def posterior_intervals(
    cells: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
    prior: float = CELL_PRIOR,
) -> dict[str, np.ndarray]:
    """For each row of `cells` (columns tp, fn, fp, tn), the interval of f1_fail and kappa: `resamples` draws of the
    cells' shares from Dirichlet(counts + prior), each metric's percentiles over them. Arrays of shape (rows, 2);
    NaN where the metric is undefined on the row itself (the same rows `metrics` gives None for)."""
    _check_draws(resamples, confidence)
    counts = np.atleast_2d(np.asarray(cells, dtype=np.float64))
    if counts.shape[-1] != 4 or np.any(counts < 0):
        raise ValueError("cells must be rows of four non-negative counts (tp, fn, fp, tn)")
    rng = np.random.default_rng(seed)
    tail = (1 - confidence) / 2 * 100
    out = {name: np.full((len(counts), 2), np.nan) for name in POSTERIOR_METRICS}
    step = max(1, _DRAWS_PER_CHUNK // resamples)
    for start in range(0, len(counts), step):
        chunk = counts[start : start + step]
        # Gamma draws normalised are Dirichlet draws; both metrics are ratios of sums and products of the same
        # degree, so the normalising is not needed. One contiguous array per cell keeps the arithmetic fast.
        tp, fn, fp, tn = (
            rng.standard_gamma(chunk[:, i : i + 1] + prior, size=(len(chunk), resamples)) for i in range(4)
        )
        drawn = {
            # Cohen's κ of a 2×2 table in closed form: 2(ad − bc) / ((a + b)(b + d) + (a + c)(c + d)).
            "kappa": 2 * (tp * tn - fn * fp) / ((tp + fn) * (fn + tn) + (tp + fp) * (fp + tn)),
            "f1_fail": 2 * tn / (2 * tn + fn + fp),
        }
        for name in POSTERIOR_METRICS:
            out[name][start : start + len(chunk)] = np.percentile(drawn[name], [tail, 100 - tail], axis=1).T
    point = _metric_arrays(counts)
    for name in POSTERIOR_METRICS:
        # The estimate of a perfect matrix (κ = 1) is where no posterior draw lands exactly: widen the interval to
        # it rather than show an estimate outside its own interval (coverage can only grow).
        out[name][:, 0] = np.fmin(out[name][:, 0], point[name])
        out[name][:, 1] = np.fmax(out[name][:, 1], point[name])
        out[name][np.isnan(point[name])] = np.nan
    return out


def confidence_intervals(
    cm: ConfusionMatrix, *, resamples: int = DEFAULT_RESAMPLES, seed: int = 0, confidence: float = CONFIDENCE
) -> dict[str, tuple[float, float] | None]:
    """The interval of each metric in METRICS: Clopper–Pearson for the proportions, the posterior bootstrap for
    f1_fail and kappa; None where the metric is undefined."""
    _check_draws(resamples, confidence)
    cells = np.array([[cm.tp, cm.fn, cm.fp, cm.tn]])
    rows: dict[str, np.ndarray] = {}
    for name, (successes, n) in proportion_counts(cells).items():
        low, high = proportion_intervals(successes, n, confidence=confidence)
        rows[name] = np.column_stack([low, high])
    rows.update(posterior_intervals(cells, resamples=resamples, seed=seed, confidence=confidence))
    intervals: dict[str, tuple[float, float] | None] = {}
    for name in METRICS:
        low, high = rows[name][0]
        intervals[name] = None if np.isnan(low) else (float(low), float(high))
    return intervals


def alignment_report(
    cm: ConfusionMatrix,
    *,
    errors: int = 0,
    skipped: Mapping[str, int] | None = None,
    split: str = "",
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """The alignment report with DESIGN.md's keys: n, the four cells, each metric, `ci` (metric → [low, high] or
    None), `errors` (judgments that failed permanently: neither pass nor fail, so outside the matrix) and `split`;
    plus `skipped` (traces the judge could not judge, e.g. without a reference: outside the matrix too) and
    `skipped_reasons` (reason → count)."""
    if errors < 0:
        raise ValueError(f"errors must be non-negative, got {errors}")
    reasons = dict(skipped or {})
    if any(count < 0 for count in reasons.values()):
        raise ValueError(f"skipped counts must be non-negative, got {reasons}")
    intervals = confidence_intervals(cm, resamples=resamples, seed=seed)
    return {
        "n": cm.n,
        "tp": cm.tp,
        "fp": cm.fp,
        "tn": cm.tn,
        "fn": cm.fn,
        **metrics(cm),
        "ci": {name: None if interval is None else [interval[0], interval[1]] for name, interval in intervals.items()},
        "errors": errors,
        "skipped": sum(reasons.values()),
        "skipped_reasons": reasons,
        "split": split,
    }


# --- evidence for a bar: lower bounds and the label budget ---------------------------------------------------------


def _matrix(source: ConfusionMatrix | Mapping[str, Any]) -> ConfusionMatrix:
    return source if isinstance(source, ConfusionMatrix) else ConfusionMatrix.from_report(source)


def rate_lower_bounds(
    source: ConfusionMatrix | Mapping[str, Any], *, confidence: float = CONFIDENCE
) -> dict[str, float | None]:
    """The lower ends of the TPR and TNR intervals (the same numbers the report's `ci` shows), from a confusion
    matrix or an alignment report; None where the rate is undefined (no expert pass, or no expert fail)."""
    cm = _matrix(source)
    tpr = proportion_interval(cm.tp, cm.tp + cm.fn, confidence=confidence)
    tnr = proportion_interval(cm.tn, cm.tn + cm.fp, confidence=confidence)
    return {"tpr": None if tpr is None else tpr[0], "tnr": None if tnr is None else tnr[0]}


def labels_needed(
    expected_rate: float, target_lower_bound: float, *, confidence: float = CONFIDENCE, limit: int = 100_000
) -> int | None:
    """How many labels of one class make the lower bound of a rate expected to be `expected_rate` reach
    `target_lower_bound`: pass labels for TPR, fail labels for TNR. The bound is the report's (Clopper–Pearson at
    `confidence`), taken at expected_rate × n successes. None when no number up to `limit` does (the expected rate
    is not above the target, or the target is 1, which no finite sample proves)."""
    if not 0 <= target_lower_bound <= 1 or not 0 <= expected_rate <= 1:
        raise ValueError(f"rates must be in [0, 1], got expected {expected_rate} and target {target_lower_bound}")
    if expected_rate <= target_lower_bound or target_lower_bound == 1:
        return None

    def lower(n: int) -> float:
        return float(proportion_intervals(expected_rate * n, n, confidence=confidence)[0])

    low, high = 1, limit
    if lower(high) < target_lower_bound:
        return None
    while low < high:  # the bound grows with n for a fixed rate: binary search for the smallest n
        mid = (low + high) // 2
        if lower(mid) >= target_lower_bound:
            high = mid
        else:
            low = mid + 1
    return low


@dataclass(frozen=True)
class LabelShortfall:
    """Whether one rate (TPR or TNR) clears a bar by its lower bound, and if not, how many more labels of its class
    would, should the rate stay where it is. `more` is 0 exactly when `met`."""

    rate: str  # "tpr" or "tnr"
    label: str  # the class of labels that rate is measured on: "pass" for TPR, "fail" for TNR
    target: float
    have: int  # expert labels of that class
    value: float | None
    lower_bound: float | None
    needed: int | None  # labels of that class for the lower bound to reach the target; None when none would

    @property
    def met(self) -> bool:
        return self.lower_bound is not None and self.lower_bound >= self.target

    @property
    def more(self) -> int | None:
        """How many more labels of `label`; 0 when met, None when more labels at this rate cannot clear the bar."""
        if self.met:
            return 0
        if self.needed is None:
            return None
        return max(1, self.needed - self.have)

    @property
    def text(self) -> str:
        name, bar = self.rate.upper(), f"{self.target:.0%}"
        if self.value is None:
            return f"{name} is undefined: no {self.label} label yet"
        if self.met:
            return f"{name} {self.value:.0%}: its lower bound {self.lower_bound:.1%} clears {bar}"
        if self.more is None:
            return f"{name} {self.value:.0%} is not above {bar}: more {self.label} labels at this rate cannot clear it"
        return (
            f"{self.more:,} more {self.label} label{'s' if self.more != 1 else ''} "
            f"({name} {self.value:.0%}, lower bound {self.lower_bound:.1%} under {bar})"
        )


def label_shortfall(
    source: ConfusionMatrix | Mapping[str, Any],
    *,
    min_tpr: float,
    min_tnr: float,
    confidence: float = CONFIDENCE,
) -> dict[str, LabelShortfall]:
    """For TPR and TNR of a confusion matrix or an alignment report: is the bar met by the lower bound, and if not,
    how many more pass / fail labels would meet it at the current rate (`labels_needed`)."""
    cm = _matrix(source)
    point = metrics(cm)
    bounds = rate_lower_bounds(cm, confidence=confidence)
    out = {}
    for rate, label, target, have in (
        ("tpr", PASS, min_tpr, cm.tp + cm.fn),
        ("tnr", FAIL, min_tnr, cm.tn + cm.fp),
    ):
        if not 0 <= target <= 1:
            raise ValueError(f"the {rate.upper()} bar must be in [0, 1], got {target!r}")
        value = point[rate]
        needed = None if value is None else labels_needed(value, target, confidence=confidence)
        out[rate] = LabelShortfall(
            rate=rate,
            label=label,
            target=target,
            have=have,
            value=value,
            lower_bound=bounds[rate],
            needed=needed,
        )
    return out


# --- beyond one confusion matrix (issue 5's statistics) ------------------------------------------------------------


def rogan_gladen(tpr: float, tnr: float, observed_pass_rate: float) -> float | None:
    """θ = (p_obs + TNR − 1) / (TPR + TNR − 1), not clipped (it can fall outside [0, 1]); None when TPR + TNR ≤ 1."""
    denominator = tpr + tnr - 1
    if denominator <= 0:
        return None
    return (observed_pass_rate + tnr - 1) / denominator


def corrected_pass_rate(tpr: float, tnr: float, observed_pass_rate: float) -> float | None:
    """Rogan–Gladen: the true pass rate behind a judge's observed one, θ = (p_obs + TNR − 1) / (TPR + TNR − 1),
    clipped to [0, 1]. None when TPR + TNR ≤ 1: a judge no better than chance says nothing about the truth."""
    raw = rogan_gladen(tpr, tnr, observed_pass_rate)
    return None if raw is None else min(1.0, max(0.0, raw))


@dataclass(frozen=True)
class CorrectedRate:
    estimate: float
    low: float
    high: float
    observed: float
    # Rogan–Gladen before clipping: outside [0, 1] when the observed rate is one the judge's TPR and TNR cannot
    # produce (e.g. fewer passes than its false passes alone would give).
    unclipped: float
    # The share of draws dropped because the judge was no better than chance in them (TPR + TNR ≤ 1).
    dropped: float
    confidence: float = CONFIDENCE

    @property
    def clipped(self) -> bool:
        return not 0 <= self.unclipped <= 1

    @property
    def unreliable(self) -> bool:
        """More draws dropped than one tail of the interval holds: its bounds are then conditional on the judge
        being better than chance, which the labelled counts do not establish."""
        return self.dropped > (1 - self.confidence) / 2

    @property
    def flags(self) -> tuple[str, ...]:
        """Plain-words warnings that go with the numbers wherever they are shown."""
        out = []
        if self.unclipped < 0:
            out.append(
                f"clipped to 0%: the correction gives {self.unclipped:.0%} (the judge passed fewer traces than "
                "its false-pass rate alone would give)"
            )
        elif self.unclipped > 1:
            out.append(
                f"clipped to 100%: the correction gives {self.unclipped:.0%} (the judge passed more traces than "
                "its TPR would give if every trace passed)"
            )
        if self.unreliable:
            out.append(
                f"{self.dropped:.0%} of the draws dropped (the judge no better than chance in them): "
                "the interval is not reliable"
            )
        return tuple(out)


class CorrectedPoint(NamedTuple):
    passes: int  # of the production sample, as the judge said
    judged: int
    observed: float
    estimate: float  # clipped to [0, 1]
    unclipped: float


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
    an interval over both sources of error: the judge's TPR and TNR drawn from the posterior of the labelled set's
    cells, and the production pass rate from its own (`judge_rate_draws`, `corrected_interval_from_draws`). Draws
    where the correction is undefined are dropped and counted (`CorrectedRate.dropped`). None when the point
    estimate is undefined (no labelled pass or fail, TPR + TNR ≤ 1, or an empty sample)."""
    _check_draws(resamples, confidence)
    point = corrected_point(cm, judged_passes=judged_passes, judged=judged)
    if point is None:
        return None
    rng = np.random.default_rng(seed)
    tpr, tnr = judge_rate_draws(cm, resamples, rng)
    return corrected_interval_from_draws(tpr, tnr, point=point, rng=rng, confidence=confidence)


def corrected_point(cm: ConfusionMatrix, *, judged_passes: int, judged: int) -> CorrectedPoint | None:
    """The observed pass rate of a production sample and its correction (clipped, and as computed); None when the
    correction is undefined."""
    if judged < 0 or not 0 <= judged_passes <= judged:
        raise ValueError(f"need 0 <= judged_passes <= judged, got {judged_passes} of {judged}")
    point = metrics(cm)
    if judged == 0 or point["tpr"] is None or point["tnr"] is None:
        return None
    observed = judged_passes / judged
    raw = rogan_gladen(point["tpr"], point["tnr"], observed)
    if raw is None:
        return None
    return CorrectedPoint(
        passes=judged_passes, judged=judged, observed=observed, estimate=min(1.0, max(0.0, raw)), unclipped=raw
    )


def judge_rate_draws(cm: ConfusionMatrix, resamples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draws of the judge's TPR and TNR from the posterior of the labelled set's cells, Dirichlet(counts +
    CELL_PRIOR), whose TPR and TNR are independent Betas. A judge perfect on 30 labels is then not certainly perfect,
    as the multinomial bootstrap held it (every resample of 30 of 30 is 30 of 30)."""
    _check_draws(resamples, CONFIDENCE)
    tpr = rng.beta(cm.tp + CELL_PRIOR, cm.fn + CELL_PRIOR, size=resamples)
    tnr = rng.beta(cm.tn + CELL_PRIOR, cm.fp + CELL_PRIOR, size=resamples)
    return tpr, tnr


def corrected_interval_from_draws(
    tpr: np.ndarray,
    tnr: np.ndarray,
    *,
    point: CorrectedPoint,
    rng: np.random.Generator,
    confidence: float = CONFIDENCE,
) -> CorrectedRate | None:
    """The rest of `corrected_pass_rate_interval` once the judge's rates are drawn: the production pass rate's
    posterior (passes and fails + CELL_PRIOR each), the correction per draw (dropping and counting those where the
    judge is no better than chance) and the percentiles. None when every draw was dropped."""
    if len(tpr) == 0 or len(tpr) != len(tnr):
        raise ValueError(f"need as many TPR as TNR draws, at least one, got {len(tpr)} and {len(tnr)}")
    observed_draws = rng.beta(point.passes + CELL_PRIOR, point.judged - point.passes + CELL_PRIOR, size=len(tpr))
    denominator = tpr + tnr - 1
    defined = denominator > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        theta = np.clip((observed_draws + tnr - 1) / denominator, 0.0, 1.0)
    valid = theta[defined]
    if valid.size == 0:
        return None
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(valid, [tail, 100 - tail])
    return CorrectedRate(
        estimate=point.estimate,
        # As in posterior_intervals: the interval reaches its own estimate.
        low=min(float(low), point.estimate),
        high=max(float(high), point.estimate),
        observed=point.observed,
        unclipped=point.unclipped,
        dropped=1 - valid.size / len(theta),
        confidence=confidence,
    )


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
    a: Sequence[bool] | np.ndarray,
    b: Sequence[bool] | np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """Pass rate of B minus pass rate of A on the same traces, with the interval of
    `paired_bootstrap_difference_from_counts`. `a` and `b` are sequences or NumPy arrays of booleans (or 0/1), one
    per trace in the same order. Raises ValueError on unequal, empty or non-boolean inputs."""
    first, second = np.asarray(a), np.asarray(b)
    if first.ndim != 1 or second.ndim != 1:
        raise ValueError(f"paired outcomes must be flat sequences, got shapes {first.shape} and {second.shape}")
    if len(first) != len(second):
        raise ValueError(f"paired outcomes need equal lengths, got {len(first)} and {len(second)}")
    if len(first) == 0:
        raise ValueError("paired outcomes are empty")
    for name, values in (("a", first), ("b", second)):
        if values.dtype != bool and not np.isin(values, (0, 1)).all():
            raise ValueError(
                f"{name}: expected booleans (or 0/1), got values such as {values[~np.isin(values, (0, 1))][0].item()!r}"
            )
    diffs = second.astype(np.int64) - first.astype(np.int64)
    only_a, same, only_b = (int((diffs == v).sum()) for v in (-1, 0, 1))
    return paired_bootstrap_difference_from_counts(
        only_a, same, only_b, resamples=resamples, seed=seed, confidence=confidence
    )


def paired_bootstrap_difference_from_counts(
    only_a: int,
    same: int,
    only_b: int,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float, float]:
    """`paired_bootstrap_difference` from the three counts it depends on: pairs where only A passed (−1), where
    both or neither did (0), where only B did (+1). The difference is the share of +1 minus the share of −1; the
    interval takes `resamples` draws of the three shares from Dirichlet(counts + PAIRED_PRIOR), so no discordant
    pair does not give [0, 0]. No list per trace, so 200,000 pairs cost what 20 do. Raises ValueError when there
    is no pair, on a negative count or a bad `resamples` or `confidence`."""
    for name, value in (("only_a", only_a), ("same", same), ("only_b", only_b)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    _check_draws(resamples, confidence)
    n = only_a + same + only_b
    if n == 0:
        raise ValueError("paired outcomes are empty")
    counts = np.array([only_a, same, only_b], dtype=np.float64)
    shares = np.random.default_rng(seed).dirichlet(counts + PAIRED_PRIOR, size=resamples)
    differences = shares[:, 2] - shares[:, 0]
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(differences, [tail, 100 - tail])
    estimate = (only_b - only_a) / n
    # As in posterior_intervals: an estimate at ±1 is where no draw lands exactly, so the interval reaches it.
    return estimate, min(float(low), estimate), max(float(high), estimate)
