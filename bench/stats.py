"""The statistics behind promotion, comparisons and monitoring, timed on the inputs they see in practice.

    .venv/bin/python bench/stats.py

Target (issue 5): the corrected pass rate with its 20,000-resample interval in <= 10 ms (median of 25 calls, after
one warm-up call), and the ratio to judgy's own estimator (`judgy.estimate_success_rate`, a Python loop over the
resamples) on the same inputs. Also confidence_intervals (the alignment report's intervals), mcnemar_exact and
paired_bootstrap_difference, the pieces of the comparison pages.

The two estimators do not draw the same things: judgy resamples the labelled pairs only, ours draws the judge's TPR
and TNR from their posterior and the production pass rate from its own, so its interval is slightly wider; the point
estimates are equal.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from judges.stats import (  # noqa: E402
    ConfusionMatrix,
    confidence_intervals,
    corrected_pass_rate_interval,
    mcnemar_exact,
    paired_bootstrap_difference,
)

TARGET_MS = 10
RESAMPLES = 20_000
CALLS = 25
JUDGY_CALLS = 3  # judgy takes about a second per call: three timings are enough for a median
# A dev split of 200 labelled traces and a production sample of 2,000 judged ones (a 10% sample of a day).
CM = ConfusionMatrix(tp=120, fn=8, fp=6, tn=66)
JUDGED, JUDGED_PASSES = 2_000, 1_380


def _median_ms(call: Callable[[int], object], calls: int) -> float:
    call(0)  # warm-up: imports (SciPy for McNemar) and first allocations
    times = []
    for seed in range(calls):
        started = time.perf_counter()
        call(seed)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def _judgy_inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same confusion matrix and production sample as 0/1 arrays, as judgy takes them."""
    labels = np.array([1] * (CM.tp + CM.fn) + [0] * (CM.fp + CM.tn))
    preds = np.array([1] * CM.tp + [0] * CM.fn + [1] * CM.fp + [0] * CM.tn)
    unlabeled = np.array([1] * JUDGED_PASSES + [0] * (JUDGED - JUDGED_PASSES))
    return labels, preds, unlabeled


def main() -> int:
    from judgy import estimate_success_rate

    ours = corrected_pass_rate_interval(CM, judged_passes=JUDGED_PASSES, judged=JUDGED, resamples=RESAMPLES)
    labels, preds, unlabeled = _judgy_inputs()
    np.random.seed(0)
    theirs = estimate_success_rate(labels, preds, unlabeled, bootstrap_iterations=RESAMPLES)
    assert ours is not None and abs(ours.estimate - theirs[0]) < 1e-12, (ours, theirs)

    corrected_ms = _median_ms(
        lambda seed: corrected_pass_rate_interval(
            CM, judged_passes=JUDGED_PASSES, judged=JUDGED, resamples=RESAMPLES, seed=seed
        ),
        CALLS,
    )
    judgy_ms = _median_ms(
        lambda _seed: estimate_success_rate(labels, preds, unlabeled, bootstrap_iterations=RESAMPLES), JUDGY_CALLS
    )
    bootstrap_ms = _median_ms(lambda seed: confidence_intervals(CM, resamples=RESAMPLES, seed=seed), CALLS)
    mcnemar_ms = _median_ms(lambda seed: mcnemar_exact(17 + seed % 3, 5), CALLS)
    rng = np.random.default_rng(1)
    a = (rng.random(400) < 0.8).tolist()  # plain lists: the function takes sequences of bools
    b = (rng.random(400) < 0.85).tolist()
    paired_ms = _median_ms(lambda seed: paired_bootstrap_difference(a, b, resamples=RESAMPLES, seed=seed), CALLS)

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"machine: {os.cpu_count()} cores, load average {load}; {RESAMPLES:,} resamples")
    print(
        f"inputs: labelled {CM.n} (tp {CM.tp}, fn {CM.fn}, fp {CM.fp}, tn {CM.tn}), production {JUDGED_PASSES}/{JUDGED}"
    )
    print(
        f"corrected rate: ours {ours.estimate:.4f} [{ours.low:.4f}, {ours.high:.4f}], "
        f"judgy {theirs[0]:.4f} [{theirs[1]:.4f}, {theirs[2]:.4f}]"
    )
    print(f"\n{'what':<46} {'median ms':>10}")
    rows = [
        (f"corrected_pass_rate_interval (median of {CALLS})", corrected_ms),
        (f"judgy.estimate_success_rate (median of {JUDGY_CALLS})", judgy_ms),
        (f"confidence_intervals, 7 metrics (median of {CALLS})", bootstrap_ms),
        (f"mcnemar_exact (median of {CALLS})", mcnemar_ms),
        (f"paired_bootstrap_difference, 400 pairs ({CALLS})", paired_ms),
    ]
    for name, ms in rows:
        print(f"{name:<46} {ms:>10.2f}")
    met = corrected_ms <= TARGET_MS
    print(f"\nratio judgy / ours: {judgy_ms / corrected_ms:,.0f}×")
    print(f"target corrected rate <= {TARGET_MS} ms: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
