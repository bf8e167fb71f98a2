"""The alignment report's intervals: exact ones for the proportions, 20,000 seeded posterior draws for κ and F1.

    .venv/bin/python bench/bootstrap.py

Target (issue 4): <= 50 ms per report. Reports the median and p95 of 50 calls, after one warm-up call, for a small
dev split and a large one (the cost grows with the number of resamples, not with n).
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from judges.stats import DEFAULT_RESAMPLES, ConfusionMatrix, confidence_intervals  # noqa: E402

TARGET_MS = 50
CASES = {
    "dev split of 80": ConfusionMatrix(tp=50, fn=6, fp=4, tn=20),
    "dev split of 20,000": ConfusionMatrix(tp=14_000, fn=1_000, fp=800, tn=4_200),
}


def main() -> int:
    print(f"{'case':<22} {'median ms':>10} {'p95 ms':>8}  resamples {DEFAULT_RESAMPLES:,}, target <= {TARGET_MS} ms")
    met = True
    for name, cm in CASES.items():
        confidence_intervals(cm)
        times = []
        for seed in range(50):
            started = time.perf_counter()
            confidence_intervals(cm, seed=seed)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        met &= p95 <= TARGET_MS
        print(f"{name:<22} {statistics.median(times):>10.1f} {p95:>8.1f}")
    print(f"\ntarget {'met' if met else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
