"""The numbers of a monitoring time series, per bucket: the judge's observed pass rate with its exact
(Clopper–Pearson) interval and the corrected pass rate with its interval from posterior draws, plus a plain-words
note on the sample size. Django-free.

Every rate carries its 95% interval; a rate that cannot be computed is None with the reason, never a number. A
corrected rate that was clipped, or whose draws were often dropped, carries its flags (`BucketStats.corrected_flags`)
wherever it goes: the table, the chart and the alert rules (monitoring.alerts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np

from judges.stats import (
    Z_95,
    ConfusionMatrix,
    CorrectedRate,
    corrected_interval_from_draws,
    corrected_point,
    judge_rate_draws,
    metrics,
    proportion_interval,
)

# DESIGN.md asks for at least 10,000 bootstrap resamples; a week of hourly buckets is 168 of them per page.
RESAMPLES = 10_000
BUCKET_LENGTH = {"hour": timedelta(hours=1), "day": timedelta(days=1)}
NO_JUDGE_EVIDENCE = "no confusion counts in the promotion's evidence (its test run)"
NO_BETTER_THAN_CHANCE = "undefined: the judge is no better than chance (TPR + TNR ≤ 1 on its promotion's evidence)"
NOTHING_JUDGED = "no judged traces"


@dataclass(frozen=True)
class BucketStats:
    start: datetime
    end: datetime
    passes: int
    fails: int
    # Judgments that failed (neither pass nor fail): left out of every rate, shown so that they are not hidden.
    errors: int
    observed: float | None
    observed_low: float | None
    observed_high: float | None
    corrected: CorrectedRate | None
    # Why `corrected` is None (empty when it is not).
    corrected_missing: str

    @property
    def judged(self) -> int:
        return self.passes + self.fails

    @property
    def corrected_flags(self) -> tuple[str, ...]:
        """Why the corrected rate should be read with care (judges.stats.CorrectedRate.flags); empty when it need
        not be, or when there is none."""
        return () if self.corrected is None else self.corrected.flags

    @property
    def corrected_unreliable(self) -> bool:
        return self.corrected is not None and self.corrected.unreliable

    @property
    def half_width_points(self) -> float | None:
        if self.observed_low is None or self.observed_high is None:
            return None
        return (self.observed_high - self.observed_low) / 2 * 100


def truncate(moment: datetime, bucket: str) -> datetime:
    """The start of the bucket (UTC hour or day) that holds `moment`."""
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def evidence_matrix(report: dict | None) -> ConfusionMatrix | None:
    """The confusion counts of a promotion's evidence (`Promotion.report`: the test run it was promoted on, never
    tuned on; the dev run for promotions made before test evidence was required), or None when it has none."""
    if not report:
        return None
    try:
        return ConfusionMatrix(tp=report["tp"], fn=report["fn"], fp=report["fp"], tn=report["tn"])
    except (KeyError, TypeError, ValueError):
        return None


@lru_cache(maxsize=64)
def _judge_draws(matrix: ConfusionMatrix, resamples: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """The posterior draws of the judge's TPR and TNR, and the generator's state after them (seed 0)."""
    rng = np.random.default_rng(0)
    tpr, tnr = judge_rate_draws(matrix, resamples, rng)
    tpr.setflags(write=False)
    tnr.setflags(write=False)
    return tpr, tnr, rng.bit_generator.state


@lru_cache(maxsize=16_384)
def corrected_interval(matrix: ConfusionMatrix, passes: int, judged: int, resamples: int) -> CorrectedRate | None:
    """judges.stats.corrected_pass_rate_interval(matrix, judged_passes=passes, judged=judged, seed=0), the same
    numbers (a test holds them equal), about five times faster over a series: with one seed, every bucket's
    draws start with the same draws of the judge's TPR and TNR, so they are drawn once per judge and only the
    production pass rate is drawn per bucket. Memoised: a page reload recomputes nothing."""
    point = corrected_point(matrix, judged_passes=passes, judged=judged)
    if point is None:
        return None
    tpr, tnr, state = _judge_draws(matrix, resamples)
    rng = np.random.default_rng(0)
    rng.bit_generator.state = state
    return corrected_interval_from_draws(tpr, tnr, point=point, rng=rng)


def bucket_stats(
    *,
    start: datetime,
    end: datetime,
    passes: int,
    fails: int,
    errors: int,
    matrix: ConfusionMatrix | None,
    resamples: int = RESAMPLES,
) -> BucketStats:
    judged = passes + fails
    interval = proportion_interval(passes, judged)
    corrected, missing = None, ""
    if judged == 0:
        missing = NOTHING_JUDGED
    elif matrix is None:
        missing = NO_JUDGE_EVIDENCE
    else:
        point = metrics(matrix)
        if point["tpr"] is None or point["tnr"] is None:
            missing = NO_JUDGE_EVIDENCE
        elif point["tpr"] + point["tnr"] <= 1:
            missing = NO_BETTER_THAN_CHANCE
        else:
            corrected = corrected_interval(matrix, passes, judged, resamples)
            if corrected is None:
                missing = NO_BETTER_THAN_CHANCE
    return BucketStats(
        start=start,
        end=end,
        passes=passes,
        fails=fails,
        errors=errors,
        observed=passes / judged if judged else None,
        observed_low=interval[0] if interval else None,
        observed_high=interval[1] if interval else None,
        corrected=corrected,
        corrected_missing=missing,
    )


def series(
    *,
    counts: dict[datetime, tuple[int, int, int]],
    start: datetime,
    end: datetime,
    bucket: str,
    matrix: ConfusionMatrix | None,
    resamples: int = RESAMPLES,
) -> list[BucketStats]:
    """One BucketStats per bucket from `start` (a bucket start) up to `end`, empty buckets included, so that a
    gap in traffic shows as a gap rather than a line drawn across it."""
    step = BUCKET_LENGTH[bucket]
    out = []
    moment = start
    while moment < end:
        passes, fails, errors = counts.get(moment, (0, 0, 0))
        out.append(
            bucket_stats(
                start=moment,
                end=moment + step,
                passes=passes,
                fails=fails,
                errors=errors,
                matrix=matrix,
                resamples=resamples,
            )
        )
        moment += step
    return out


def traces_for_margin(rate: float | None, margin: float = 0.05) -> int:
    """About how many judged traces give a 95% interval of ±margin around `rate` (normal approximation). Rates
    near 0 or 1 are taken as 10% / 90%, where the approximation still holds."""
    p = 0.5 if rate is None else min(max(rate, 0.1), 0.9)
    needed = Z_95 * Z_95 * p * (1 - p) / (margin * margin)
    # Rounded to two significant figures: "about 350", not "about 346".
    digits = max(0, len(str(math.ceil(needed))) - 2)
    return int(math.ceil(needed / 10**digits) * 10**digits)


def sample_size_note(stats: BucketStats, period: str) -> str:
    """E.g. "n = 37 this hour: the interval is ±16 points; about 350 traces give ±5"."""
    target = traces_for_margin(stats.observed)
    if stats.judged == 0:
        return f"n = 0 {period}: no interval yet; about {target} judged traces give ±5 points"
    half = stats.half_width_points or 0.0
    return f"n = {stats.judged} {period}: the interval is ±{half:.0f} points; about {target} traces give ±5"
