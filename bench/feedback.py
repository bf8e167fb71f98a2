"""Users' feedback: what it costs ingestion, the feedback API, the negative-feedback-first session and the
monitoring series — each beside a baseline measured in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/feedback.py [--traces 20000] [--runs 3]

Writes into its own database (`evalstudio_bench_feedback`, rebuilt each run). Prints medians:
- importing N production traces without feedback (baseline) and with two feedback items each;
- POST of one feedback item vs POST of one trace (the traces API, baseline), in-process through Django's client;
- creating a 100-trace session: negative feedback first vs random (baseline), 5% of traces with negative feedback;
- the hourly negative-feedback series over 7 days and the agreement table (no judge verdicts: the lookup cost).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

import pages  # bench/pages.py: database helpers and Django setup

BENCH_DB = "evalstudio_bench_feedback"


def _items(n: int, prefix: str, feedback: bool) -> bytes:
    now = datetime.now(UTC)
    lines = []
    for i in range(n):
        item = {
            "id": f"{prefix}-{i}",
            "input": f"question {i} about the order",
            "output": "Here is the answer to your question." * 3,
            "source": "production",
            "timestamp": (now - timedelta(minutes=i % 10_000)).isoformat(),
        }
        if feedback:
            negative = i % 20 == 0
            item["feedback"] = [
                {"kind": "thumbs", "value": "down" if negative else "up", "user": f"u{i % 97}"},
                {"kind": "rating", "value": 1 if negative else 5, "scale": 5},
            ]
        lines.append(json.dumps(item))
    return ("\n".join(lines) + "\n").encode()


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    admin_url, bench_url = pages.bench_urls(
        os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"), BENCH_DB
    )
    pages.ensure_database(admin_url, rebuild=True, name=BENCH_DB)
    pages.setup_django(bench_url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.contrib.auth import get_user_model
    from django.test import Client
    from django.utils import timezone

    from annotation import ingest
    from annotation.models import Feedback, Project
    from annotation.services import api_token_create
    from annotation.sessions import review_session_create
    from monitoring.feedback import feedback_agreement, negative_feedback_series

    user = get_user_model().objects.create_user("bench-expert", password="x")
    n = args.traces
    plain, with_feedback = _items(n, "t", False), _items(n, "t", True)
    print(f"\n| import {n:,} traces | median s | traces/s | ratio |")
    print("|---|---:|---:|---:|")
    # Warm-up (imports, connections, plan caches) so the first measured case is not the one that pays for it.
    warm = Project.objects.create(slug="warm-up", name="w", expert=user)
    ingest.import_stream(project=warm, stream=io.BytesIO(_items(500, "w", True)))
    cases = (("no feedback (baseline)", plain), ("2 feedback items each", with_feedback))
    import_times: dict[str, list[float]] = {name: [] for name, _ in cases}
    # Interleaved, so a change in the machine's load falls on both cases alike.
    for run in range(args.runs):
        for index, (name, body) in enumerate(cases):
            project = Project.objects.create(slug=f"imp-{index}-{run}", name="p", expert=user)
            started = time.perf_counter()
            ingest.import_stream(project=project, stream=io.BytesIO(body))
            import_times[name].append(time.perf_counter() - started)
    results = {name: statistics.median(values) for name, values in import_times.items()}
    base = results["no feedback (baseline)"]
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.2f} | {n / seconds:,.0f} | {seconds / base:.2f} |")
    stored = Feedback.objects.filter(trace__project__slug="imp-1-0").count()
    print(f"\nfeedback rows stored by one run: {stored:,}")

    project = Project.objects.get(slug="imp-1-0")
    token = api_token_create(project=project, name="bench")[1]
    client = Client()
    headers = {"Authorization": f"Bearer {token}"}
    fb_times, trace_times = [], []
    for i in range(300):
        started = time.perf_counter()
        response = client.post(
            f"/api/v1/projects/{project.slug}/traces/t-{i}/feedback",
            data=json.dumps({"kind": "thumbs", "value": "down", "id": f"b{i}"}),
            content_type="application/json",
            headers=headers,
        )
        fb_times.append(time.perf_counter() - started)
        assert response.status_code == 201, response.content
        started = time.perf_counter()
        response = client.post(
            f"/api/v1/projects/{project.slug}/traces",
            data=json.dumps({"traces": [{"id": f"api-{i}", "input": "q", "source": "production"}]}),
            content_type="application/json",
            headers=headers,
        )
        trace_times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.content
    print("\n| request (300 each, in-process) | median ms | p95 ms |")
    print("|---|---:|---:|")
    for name, times in (("POST one trace (baseline)", trace_times), ("POST one feedback item", fb_times)):
        p95 = sorted(times)[int(len(times) * 0.95)] * 1000
        print(f"| {name} | {median_ms(times):.1f} | {p95:.1f} |")

    from django.db import transaction

    class Rollback(Exception):
        pass

    print(f"\n| create a 100-trace session ({n:,} traces, 5% negative) | median ms | ratio |")
    print("|---|---:|---:|")
    session_ms = {}
    for strategy in ("random", "negative_feedback"):
        times = []
        for run in range(max(args.runs, 5)):
            started = time.perf_counter()
            try:
                with transaction.atomic():
                    review_session_create(project=project, created_by=user, strategy=strategy, size=100, seed=f"s{run}")
                    raise Rollback
            except Rollback:
                pass
            times.append(time.perf_counter() - started)
        session_ms[strategy] = median_ms(times)
    for strategy, ms in session_ms.items():
        label = "random (baseline)" if strategy == "random" else "negative feedback first"
        print(f"| {label} | {ms:.1f} | {ms / session_ms['random']:.2f} |")

    series_times, agreement_times = [], []
    for _ in range(max(args.runs, 5)):
        started = time.perf_counter()
        negative_feedback_series(project=project, bucket="hour", window=timedelta(days=7), now=timezone.now())
        series_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        feedback_agreement(project=project, check_ids=[0], start=timezone.now() - timedelta(days=7))
        agreement_times.append(time.perf_counter() - started)
    print("\n| monitoring read | median ms |")
    print("|---|---:|")
    print(f"| negative-feedback series, hourly over 7 days ({n:,} traces) | {median_ms(series_times):.1f} |")
    print(f"| agreement table lookup | {median_ms(agreement_times):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
