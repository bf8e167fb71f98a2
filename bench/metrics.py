"""`GET /metrics` at a million traces: the scrape's server time against the monitoring overview page (the same
numbers as HTML, the baseline), both measured in this run on the same data.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/metrics.py [--requests 20]

Seeds its own database (`evalstudio_bench_metrics`) as bench/monitoring_pages.py does (1,000,000 production traces
over 30 days, a promoted judge with ~130,000 verdicts, the newest 20,000 sampled traces not yet judged), plus nine
small projects with a promoted judge each, so a scrape walks ten projects. Reused afterwards. Times the scrape cold
(caches cleared: the corrected intervals are computed) and warm, the series route of the API (hour/24h, day/30d),
and prints EXPLAIN of the scrape's window counts. Goal: p95 < 300 ms per scrape (Prometheus' default timeout is
10 s; a scrape every 15–60 s).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import monitoring_pages
import pages as bench_pages

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "evalstudio_bench_metrics"
GOAL_MS = 300.0
SMALL_PROJECTS = 9
TOKEN = "bench-metrics-operator-token-0123456789"


def populate_small() -> None:
    from django.contrib.auth.models import User

    from annotation.models import Criterion, Project
    from annotation.services import project_create
    from judges.models import Judge, Promotion
    from judges.services import judge_create

    expert = User.objects.get(username="bench-expert")
    for n in range(SMALL_PROJECTS):
        slug = f"small-{n}"
        if Project.objects.filter(slug=slug).exists():
            continue
        project = project_create(slug=slug, name=slug, expert=expert)
        criterion = Criterion.objects.create(project=project, name="no_apology", position=1)
        judge = judge_create(project=project, criterion=criterion, name="apology", kind=Judge.Kind.ASSERTION,
                             config={"check": "contains", "value": "sorry", "must_contain": False})  # fmt: skip
        Promotion.objects.create(criterion=criterion, version=judge.latest_version(), min_tpr=0.9, min_tnr=0.9,
                                 report={"n": 200, "tp": 130, "fn": 5, "fp": 6, "tn": 59})  # fmt: skip


def explain() -> None:
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from monitoring.models import MonitoredCheck, MonitorJudgment

    check = MonitoredCheck.objects.get(series__project__slug="bench")
    now = timezone.now()
    queryset = MonitorJudgment.objects.filter(
        monitored_check=check, occurred_at__gte=now - timedelta(hours=24), occurred_at__lt=now
    ).values("verdict")
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = [row[0] for row in cursor.fetchall()]
    seq = any("Seq Scan" in line for line in plan)
    print(f"  EXPLAIN window count (24 h): {'SEQ SCAN!' if seq else 'ok'}: {plan[0].split('  (')[0].strip()}")


def timed(client, url: str, requests: int, *, cold: bool = False, **headers: str) -> list[float]:
    from django.core.cache import cache

    from monitoring import series

    times = []
    for _ in range(requests):
        if cold:
            cache.clear()
            series.corrected_interval.cache_clear()
        started = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append(1000 * (time.perf_counter() - started))
        assert response.status_code == 200, (url, response.status_code, response.content[:200])
    return times


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    admin_url, bench_url = bench_pages.bench_urls(base, BENCH_DB)
    bench_pages.ensure_database(admin_url, args.rebuild, BENCH_DB)
    os.environ["EVALSTUDIO_METRICS_TOKEN"] = TOKEN
    bench_pages.setup_django(bench_url)
    monitoring_pages.BENCH_DB = BENCH_DB  # its messages name the database
    monitoring_pages.populate()
    populate_small()
    explain()

    from django.contrib.auth.models import User
    from django.test import Client

    from annotation.models import Criterion

    client = Client()
    client.force_login(User.objects.get(username="bench-expert"))
    criterion = Criterion.objects.get(project__slug="bench", name="no_apology")
    scrape = {"Authorization": f"Bearer {TOKEN}"}
    series = "/api/v1/projects/bench/monitoring/series?criterion=no_apology"
    page = f"/projects/bench/monitoring/{criterion.pk}/?bucket=hour&window=48h"
    cases = [
        ("overview page (baseline, warm)", "/projects/bench/monitoring/", False, {}),
        ("criterion page hour/48h (warm)", page, False, {}),
        ("/metrics, 10 projects (warm)", "/metrics", False, scrape),
        ("/metrics, 10 projects (cold)", "/metrics", True, scrape),
        ("API series hour/24h (warm)", f"{series}&bucket=hour&window=24h", False, {}),
        ("API series day/30d (cold)", f"{series}&bucket=day&window=30d", True, {}),
    ]  # fmt: skip
    ok = True
    print(f"  {'request':<34} {'p50 ms':>8} {'p95 ms':>8}")
    for name, url, cold, headers in cases:
        timed(client, url, 1, **headers)  # warm-up (connections, imports)
        times = timed(client, url, args.requests, cold=cold, **headers)
        p50, p95 = statistics.median(times), bench_pages.percentile(times, 0.95)
        goal = url.startswith("/metrics")
        ok = ok and (not goal or p95 < GOAL_MS)
        print(f"  {name:<34} {p50:8.1f} {p95:8.1f}{'  over the goal' if goal and p95 >= GOAL_MS else ''}")
    size = len(Client().get("/metrics", headers=scrape).content)
    print(f"  scrape size: {size:,} bytes")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
