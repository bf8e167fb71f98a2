"""Production monitoring at scale: 1,000,000 traces over 30 days, 15% sampled, 150,000 verdicts of a promoted judge.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/monitoring_pages.py [--requests 20]

Writes into its own database (`evalstudio_bench_monitoring`), filled with `INSERT … SELECT generate_series` on the
first run and reused afterwards. Prints EXPLAIN for the series aggregate and the drain's next-chunk query (index
scans, never a sequential scan of the trace or verdict table), p50/p95 server time of the monitoring pages through
Django's test client, and the drain's throughput with an assertion judge (on the 15% sample, and on all production
traffic, as a series set to judge all of it). Goal: p95 < 300 ms per page (a week of
hourly buckets is 168 bootstrap intervals of 10,000 resamples each).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import pages as bench_pages  # the page benchmark's database and timing helpers

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "evalstudio_bench_monitoring"
TRACES = 1_000_000
SAMPLED_SHARE = 0.15
GOAL_MS = 300.0
DRAIN_TRACES = 20_000


def populate() -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from annotation.models import Criterion, Project
    from annotation.services import project_create
    from judges.models import Judge, Promotion
    from judges.services import judge_create
    from monitoring.checks import promotion_check
    from monitoring.services import check_get_or_create

    call_command("migrate", verbosity=0)
    project = Project.objects.filter(slug="bench").first()
    if project is not None and project.traces.count() >= TRACES:
        print(f"reusing {BENCH_DB}: {TRACES:,} traces already there", flush=True)
        return
    if project is not None:
        project.delete()
    expert = User.objects.filter(username="bench-expert").first() or User.objects.create_user(
        "bench-expert", password="bench"
    )
    project = project_create(slug="bench", name="Bench", expert=expert)
    criterion = Criterion.objects.create(project=project, name="no_apology", position=1)
    judge = judge_create(
        project=project,
        criterion=criterion,
        name="apology",
        kind=Judge.Kind.ASSERTION,
        config={"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False},
    )
    version = judge.latest_version()
    promotion = Promotion.objects.create(
        criterion=criterion,
        version=version,
        report={"n": 400, "tp": 270, "fn": 10, "fp": 12, "tn": 108, "tpr": 270 / 280, "tnr": 108 / 120},
        min_tpr=0.9,
        min_tnr=0.9,
    )
    check = check_get_or_create(project=project, check=promotion_check(promotion, project))
    started = time.monotonic()
    with connection.cursor() as cursor:
        # 1,000,000 production traces over the last 30 days. The judged 15% are picked by an md5 bucket in SQL (the
        # drain's own hash is Python's; for the pages any 15% reads the same).
        cursor.execute(
            """
            INSERT INTO annotation_trace (project_id, external_id, input, output, metadata, session_id, task_id,
                source, occurred_at, created_at, shuffle_key)
            SELECT %(project)s, 'm-' || i, 'Customer question ' || i || ': where is my order?',
                   CASE WHEN i %% 7 = 0 THEN 'Sorry, I cannot help with that.' ELSE 'It shipped yesterday.' END,
                   '{}'::jsonb, '', '', 'production',
                   now() - (%(n)s - i) * interval '2.592 seconds', now(),
                   ('x' || substr(md5('bench:' || i), 1, 15))::bit(60)::bigint
            FROM generate_series(1, %(n)s) AS i
            """,
            {"project": project.pk, "n": TRACES},
        )
        print(f"inserted {TRACES:,} traces in {time.monotonic() - started:.0f} s", flush=True)
        # The promoted judge has judged every sampled trace but the newest DRAIN_TRACES (left for the drain bench).
        cursor.execute(
            """
            INSERT INTO monitoring_monitorjudgment (project_id, monitored_check_id, trace_id, occurred_at,
                verdict, reasoning, error, created_at)
            SELECT project_id, %(check)s, id, occurred_at,
                   CASE WHEN output LIKE 'Sorry%%' THEN 'fail' ELSE 'pass' END, '', '', now()
            FROM annotation_trace
            WHERE project_id = %(project)s
              AND (('x' || substr(md5('sample:' || id), 1, 8))::bit(32)::bigint %% 100) < 15
            ORDER BY id
            OFFSET 0 LIMIT (SELECT count(*) - %(left)s FROM annotation_trace
                            WHERE project_id = %(project)s
                              AND (('x' || substr(md5('sample:' || id), 1, 8))::bit(32)::bigint %% 100) < 15)
            """,
            {"project": project.pk, "check": check.pk, "left": DRAIN_TRACES},
        )
        cursor.execute(
            """
            INSERT INTO monitoring_monitorcursor (monitored_check_id, project_id, last_trace_id, lease_token,
                updated_at)
            SELECT %(check)s, %(project)s, max(trace_id), '', now() FROM monitoring_monitorjudgment
            WHERE monitored_check_id = %(check)s
            """,
            {"project": project.pk, "check": check.pk},
        )
    connection.ensure_connection()
    previous = connection.get_autocommit()
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE annotation_trace")
        cursor.execute("VACUUM ANALYZE monitoring_monitorjudgment")
    connection.set_autocommit(previous)
    print(f"populated {BENCH_DB} in {time.monotonic() - started:.0f} s", flush=True)


def explain() -> bool:
    from datetime import timedelta

    from django.db import connection
    from django.utils import timezone

    from annotation.models import Project, Trace
    from monitoring.models import MonitoredCheck, MonitorJudgment
    from monitoring.selectors import SCAN_PAGE, bucket_counts

    project = Project.objects.get(slug="bench")
    check = MonitoredCheck.objects.get(series__project=project)
    now = timezone.now()
    queries = {
        "series (7 d, hourly)": MonitorJudgment.objects.filter(
            monitored_check=check, occurred_at__gte=now - timedelta(days=7), occurred_at__lt=now
        ).values("id"),
        "next drain page": Trace.objects.filter(project=project, source="production", id__gt=0)
        .order_by("id")
        .values_list("id", "external_id")[:SCAN_PAGE],
    }
    ok = True
    for name, queryset in queries.items():
        sql, params = queryset.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params)
            plan = "\n".join(row[0] for row in cursor.fetchall())
        seq = "Seq Scan" in plan
        ok = ok and not seq
        first = plan.splitlines()[0].split("  (")[0].strip()
        print(f"  EXPLAIN {name:<22} {'SEQ SCAN!' if seq else 'ok'}: {first}")
    started = time.perf_counter()
    rows = bucket_counts(project=project, check_id=check.pk, start=now - timedelta(days=7), end=now, bucket="hour")
    print(f"  series aggregate (7 d hourly, {len(rows)} buckets): {1000 * (time.perf_counter() - started):.0f} ms")
    return ok


def time_pages(requests: int) -> bool:
    from django.contrib.auth.models import User
    from django.test import Client

    from annotation.models import Criterion, Project

    project = Project.objects.get(slug="bench")
    criterion = Criterion.objects.get(project=project, name="no_apology")
    client = Client()
    client.force_login(User.objects.get(username="bench-expert"))
    base = f"/projects/{project.slug}/monitoring/"
    urls = {
        "overview": base,
        "criterion hour/48h": f"{base}{criterion.pk}/?bucket=hour&window=48h",
        "criterion hour/7d": f"{base}{criterion.pk}/?bucket=hour&window=7d",
        "criterion day/30d": f"{base}{criterion.pk}/?bucket=day&window=30d",
        "project page (banner)": f"/projects/{project.slug}/",
    }
    ok = True
    print(f"  {'page':<24} {'p50 ms':>8} {'p95 ms':>8}")
    for name, url in urls.items():
        bench_pages.time_get(client, [url])  # warm-up
        times = bench_pages.time_get(client, [url] * requests)
        p50, p95 = statistics.median(times), bench_pages.percentile(times, 0.95)
        ok = ok and p95 < GOAL_MS
        print(f"  {name:<24} {p50:8.1f} {p95:8.1f}{'' if p95 < GOAL_MS else '  over the goal'}")
    return ok


def _vacuum(table: str) -> None:
    from django.db import connection

    previous = connection.get_autocommit()
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {table}")
    connection.set_autocommit(previous)


def time_drain(*, all_traffic: bool) -> None:
    """Drain the backlog past the cursor: the 15% sample, or (all_traffic) every production trace past it."""
    from annotation.models import Project
    from monitoring.models import MonitorCursor, MonitoredSeries, MonitorJudgment, SeriesTraffic
    from monitoring.services import monitoring_drain

    project = Project.objects.get(slug="bench")
    start = MonitorCursor.objects.get().last_trace_id
    if all_traffic:
        # As if the series had been set to all traffic when the cursor was there (a setting applies to the traces
        # stored after it).
        SeriesTraffic.objects.create(series=MonitoredSeries.objects.get(), all_traffic=True, after_trace_id=start)
    started = time.perf_counter()
    judged = monitoring_drain(project=project, budget_seconds=300)
    elapsed = time.perf_counter() - started
    what = "production traces (all traffic)" if all_traffic else "sampled traces"
    print(f"  drain: {judged:,} {what} judged (assertion judge) in {elapsed:.1f} s = {judged / elapsed:,.0f}/s")
    # Put the backlog back, so that the next run measures the same work, on a table as clean as the first run's: the
    # all-traffic drain writes and deletes ~130,000 verdicts, which leave the series index's pages not all-visible
    # (its counts then read the heap) until a vacuum.
    MonitorJudgment.objects.filter(trace_id__gt=start).delete()
    MonitorCursor.objects.update(last_trace_id=start)
    SeriesTraffic.objects.all().delete()
    _vacuum("monitoring_monitorjudgment")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    admin_url, bench_url = bench_pages.bench_urls(base, BENCH_DB)
    bench_pages.ensure_database(admin_url, args.rebuild, BENCH_DB)
    bench_pages.setup_django(bench_url)
    populate()
    plans_ok = explain()
    pages_ok = time_pages(args.requests)
    time_drain(all_traffic=False)
    time_drain(all_traffic=True)
    return 0 if plans_ok and pages_ok else 1


if __name__ == "__main__":
    sys.exit(main())
