"""`make bench`: run every benchmark in bench/ in turn and print each one's table.

Benchmarks need PostgreSQL (`DATABASE_URL`, default the local server) and write into their own databases, never
into the one named by DATABASE_URL. Each prints its own figures and ratios; this script only sequences them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# Ordered: cheap first, so a broken setup fails fast.
BENCHMARKS = [
    "bootstrap.py",
    "stats.py",
    "outbound.py",
    "reference_judges.py",
    "alignment_real.py",
    "judge_throughput.py",
    "evalsuite.py",
    "pages.py",
    "sessions.py",
    "taxonomy.py",
    "taxonomy_exports.py",
    "monitoring_pages.py",
    "metrics.py",
    "coding.py",
    "clustering.py",
    "ingest.py",
    "api_rate_limit.py",
    "upload_storage.py",
    "otlp_ingest.py",
    "pairwise.py",
    "bias_battery.py",
    "guardrails.py",
    "label_context.py",
    "cadence.py",
    "reliability.py",
    "review_speed.py",
]


def main() -> int:
    env = dict(os.environ)
    env.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    env.setdefault("PYTHONPATH", str(BENCH_DIR.parent))
    failures = []
    for name in BENCHMARKS:
        print(f"\n=== bench/{name}", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(BENCH_DIR / name)], env=env, check=False)
        print(f"=== bench/{name}: exit {result.returncode} in {time.monotonic() - started:.0f} s", flush=True)
        if result.returncode != 0:
            failures.append(name)
    if failures:
        print(f"\nFailed: {', '.join(failures)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
