"""Reference judges' speed: traces judged per second by each comparison mode, against an assertion check.

    .venv/bin/python bench/reference_judges.py [--traces 20000] [--rounds 5]

Django-free (judges.providers only): 20,000 answers of 200–400 characters with their references, judged by each
mode's provider in one process; the median of the rounds. Baseline, measured in the same run: the assertion
`contains` check (the cheapest rung of the ladder) on the same outputs. A reference judge runs in suites and
monitoring as often as an assertion does, so it should stay within a small factor of it.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from judges.providers import TraceInput, assertion, reference  # noqa: E402

WORDS = [
    "the",
    "reactor",
    "count",
    "in",
    "france",
    "is",
    "stable",
    "and",
    "operated",
    "by",
    "edf",
    "across",
    "many",
    "sites",
    "each",
    "year",
]


def make_traces(n: int, seed: int = 5) -> dict[str, list[TraceInput]]:
    rng = random.Random(seed)
    per_mode: dict[str, list[TraceInput]] = {name: [] for name in ("text", "numeric", "json", "facts")}
    for i in range(n):
        filler = " ".join(rng.choice(WORDS) for _ in range(rng.randint(30, 60)))
        total = rng.randint(1, 2000)
        answer = f"{filler.capitalize()}. In total there are {total:,} reactors."
        per_mode["text"].append(TraceInput(external_id=str(i), output=answer, reference=answer.upper()))
        per_mode["numeric"].append(TraceInput(external_id=str(i), output=answer, reference=total))
        doc = {"total": total, "items": [rng.randint(0, 9) for _ in range(8)], "country": "France"}
        text = '{"country": "France", "items": %s, "total": %d}' % (doc["items"], total)  # noqa: UP031
        per_mode["json"].append(TraceInput(external_id=str(i), output=text, reference=doc))
        facts = [f"{total:,} reactors", {"regex": r"\bfrance\b"}, "edf"]
        per_mode["facts"].append(TraceInput(external_id=str(i), output=answer, reference=facts))
    return per_mode


def rate(judge, config: dict, traces: list[TraceInput], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for trace in traces:
            judge(config, trace)
        times.append(time.perf_counter() - started)
    return len(traces) / statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    traces = make_traces(args.traces)
    baseline = rate(
        assertion.judge,
        assertion.validate_config({"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}),
        traces["text"],
        args.rounds,
    )
    rows = [("assertion contains (baseline)", baseline)]
    for label, config, kind in (
        ("reference exact", {"mode": "exact"}, "text"),
        ("reference normalized", {"mode": "normalized"}, "text"),
        ("reference normalized + diacritics", {"mode": "normalized", "diacritics": True}, "text"),
        ("reference numeric (last)", {"mode": "numeric", "abs_tol": 0.5}, "numeric"),
        ("reference json", {"mode": "json"}, "json"),
        ("reference facts (2 strings, 1 regex)", {"mode": "facts"}, "facts"),
    ):
        rows.append((label, rate(reference.judge, reference.validate_config(config), traces[kind], args.rounds)))
    print(f"{args.traces:,} traces, median of {args.rounds} rounds")
    print(f"| {'judge':<40} | {'traces/s':>10} | {'vs baseline':>11} |")
    print(f"|{'-' * 42}|{'-' * 12}:|{'-' * 12}:|")
    for label, value in rows:
        print(f"| {label:<40} | {value:>10,.0f} | {value / baseline:>10.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
