"""Review pages at scale: 1,000,000 traces and 100,000 labels in PostgreSQL, timed through Django's test client.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/pages.py [--requests 200] [--rebuild]

Writes into its own database (`evalstudio_bench_pages` on the server DATABASE_URL names), migrated and filled with
`INSERT … SELECT generate_series` on the first run and reused afterwards. Prints EXPLAIN for the queue and list
queries (they must be index scans, never a sequential scan of the trace table) and p50/p95 server time per page.
Goal: p95 < 100 ms for every page.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import warnings
from pathlib import Path
from urllib.parse import urlencode, urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "evalstudio_bench_pages"
TRACES = 1_000_000
LABELS = 100_000  # one label on each of the 100,000 reviewed traces
CRITERIA = 5
GOAL_MS = 100.0


def bench_urls(base: str, name: str = BENCH_DB) -> tuple[str, str]:
    """The server's maintenance database and the bench database `name` on the server `base` names."""
    parts = urlsplit(base)
    admin = urlunsplit(parts._replace(path="/postgres"))
    bench = urlunsplit(parts._replace(path=f"/{name}"))
    return admin, bench


def ensure_database(admin_url: str, rebuild: bool, name: str = BENCH_DB) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and rebuild:
            conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def fresh_database(name: str) -> str:
    """The scratch database `name` on the server DATABASE_URL names, dropped and made again, migrated, with Django
    set up on it (for benches whose figures must not depend on what an earlier run left). Returns its URL."""
    admin, bench = bench_urls(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test"), name)
    ensure_database(admin, rebuild=True, name=name)
    setup_django(bench)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return bench


def setup_django(bench_url: str) -> None:
    os.environ["DATABASE_URL"] = bench_url
    os.environ.setdefault("SECRET_KEY", "insecure-bench-only-key")
    os.environ["DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalstudio.settings")
    import django

    # whitenoise warns that collectstatic has not run; the bench serves no static files.
    warnings.filterwarnings("ignore", message="No directory at", category=UserWarning)
    django.setup()
    from django.conf import settings

    # The bench never serves static files; the manifest storage would want collectstatic's output.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }


def populate() -> None:
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from annotation.models import Criterion, Project
    from annotation.services import project_create

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
    criteria = [
        Criterion.objects.create(project=project, name=f"criterion-{i}", position=i, definition="Pass when …")
        for i in range(CRITERIA)
    ]
    started = time.monotonic()
    with connection.cursor() as cursor:
        # Deterministic pseudo-random values from md5, so a rebuild yields the same data.
        cursor.execute(
            """
            INSERT INTO annotation_trace (project_id, external_id, input, output, messages, context, metadata,
                session_id, task_id, trial, source, occurred_at, created_at, shuffle_key, reviewed_at)
            SELECT %(project)s,
                   'b-' || i,
                   'Customer question number ' || i || ': where is my order, and can I change the address?',
                   'Thanks for reaching out! Your order **#' || i || '** shipped yesterday. You can change the '
                       || 'address from [your account](https://example.com/account) until it is out for delivery.',
                   CASE WHEN i %% 10 = 0 THEN jsonb_build_array(
                       jsonb_build_object('role', 'user', 'content', 'Where is order ' || i || '?'),
                       jsonb_build_object('role', 'assistant', 'content', NULL, 'tool_calls', jsonb_build_array(
                           jsonb_build_object('id', 'c1', 'type', 'function', 'function',
                               jsonb_build_object('name', 'lookup_order', 'arguments', '{"id": ' || i || '}')))),
                       jsonb_build_object('role', 'tool', 'tool_call_id', 'c1', 'content', '{"status": "shipped"}'),
                       jsonb_build_object('role', 'assistant', 'content', 'It **shipped**.'))
                   END,
                   CASE WHEN i %% 4 = 0 THEN jsonb_build_array('Orders ship within 2 days.', 'Returns: 30 days.') END,
                   jsonb_build_object('locale', (ARRAY['en', 'de', 'fr', 'es'])[1 + i %% 4],
                                      'model', (ARRAY['gpt-a', 'gpt-b'])[1 + i %% 2],
                                      'customer_tier', (ARRAY['free', 'pro', 'enterprise'])[1 + i %% 3]),
                   's-' || (i / 5), '', NULL,
                   (ARRAY['production', 'production', 'production', 'synthetic', 'staging'])[1 + i %% 5],
                   timestamptz '2026-01-01 00:00:00+00' + i * interval '25 seconds',
                   now(),
                   ('x' || substr(md5('bench:' || i), 1, 15))::bit(60)::bigint,
                   NULL
            FROM generate_series(1, %(n)s) AS i
            """,
            {"project": project.pk, "n": TRACES},
        )
        print(f"inserted {TRACES:,} traces in {time.monotonic() - started:.0f} s", flush=True)
        # The expert has reviewed 100,000 traces, picked pseudo-randomly, in a review order over the last weeks.
        cursor.execute(
            """
            UPDATE annotation_trace t SET reviewed_at = now() - interval '30 days' + r.rn * interval '20 seconds'
            FROM (SELECT id, row_number() OVER (ORDER BY md5('rev:' || id)) AS rn
                  FROM annotation_trace WHERE project_id = %(project)s) r
            WHERE t.id = r.id AND r.rn <= %(labels)s
            """,
            {"project": project.pk, "labels": LABELS},
        )
        cursor.execute(
            """
            INSERT INTO annotation_label
                (trace_id, criterion_id, verdict, critique, author_id, created_at, updated_at, criterion_version)
            SELECT id, (%(criteria)s::bigint[])[1 + (id %% %(ncrit)s)],
                   CASE WHEN id %% 3 = 0 THEN 'fail' ELSE 'pass' END,
                   CASE WHEN id %% 3 = 0 THEN 'Claims a delivery date the tracking data does not show.' ELSE '' END,
                   %(author)s, reviewed_at, reviewed_at, 1
            FROM annotation_trace WHERE project_id = %(project)s AND reviewed_at IS NOT NULL
            """,
            {
                "project": project.pk,
                "criteria": [c.pk for c in criteria],
                "ncrit": CRITERIA,
                "author": expert.pk,
            },
        )
    # VACUUM outside a transaction: fresh statistics and a visibility map, so counts can be index-only scans.
    connection.ensure_connection()
    previous = connection.get_autocommit()
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE annotation_trace")
        cursor.execute("VACUUM ANALYZE annotation_label")
    connection.set_autocommit(previous)
    print(f"populated {BENCH_DB} in {time.monotonic() - started:.0f} s", flush=True)


def _show_plan(name: str, plan: str) -> bool:
    seq = "Seq Scan on annotation_trace" in plan
    scans = sorted({line.strip().split(" on ")[0].lstrip("-> ") for line in plan.splitlines() if " on " in line})
    print(f"  EXPLAIN {name:<30} {'SEQ SCAN!' if seq else 'ok'}: {', '.join(scans)}")
    return not seq


def _explain() -> bool:
    """Show the plans of the queries behind each page; a sequential scan on the trace table is a failure."""
    from django.db import connection

    from annotation.models import Project, Trace
    from annotation.queue import QueueParams, keyset_after, ordering_for, unreviewed

    project = Project.objects.get(slug="bench")
    sample = Trace.objects.filter(project=project, reviewed_at__isnull=True).order_by("id")[500_000:500_001].get()
    reviewed = Trace.objects.filter(project=project, reviewed_at__isnull=False).order_by("id").first()
    queries = {
        "queue first (random)": unreviewed(project, QueueParams()).order_by(*ordering_for("random"))[:1],
        "queue next (random)": unreviewed(project, QueueParams())
        .filter(keyset_after(("shuffle_key", "id"), (sample.shuffle_key, sample.pk), descending=False))
        .order_by(*ordering_for("random"))[:1],
        "queue next (newest)": unreviewed(project, QueueParams(order="newest"))
        .filter(keyset_after(("occurred_at", "id"), (sample.occurred_at, sample.pk), descending=True))
        .order_by(*ordering_for("newest"))[:1],
        "previous (review log)": Trace.objects.filter(project=project, reviewed_at__isnull=False)
        .filter(keyset_after(("reviewed_at", "id"), (reviewed.reviewed_at, reviewed.pk), descending=True))
        .order_by("-reviewed_at", "-id")[:1],
        "list page (cursor)": Trace.objects.filter(project=project)
        .filter(keyset_after(("occurred_at", "id"), (sample.occurred_at, sample.pk), descending=True))
        .order_by("-occurred_at", "-id")[:51],
        "queue first (meta=locale=de)": unreviewed(project, QueueParams(meta_key="locale", meta_value="de")).order_by(
            *ordering_for("random")
        )[:1],
    }
    ok = True
    for name, queryset in queries.items():
        ok = _show_plan(name, queryset.explain()) and ok
    # The "n of N reviewed" count runs on every page: it must be an index-only scan of the review log.
    counted = Trace.objects.filter(project=project, reviewed_at__isnull=False).order_by().values("id")
    sql, params = counted.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN SELECT count(*) FROM ({sql}) s", params)
        ok = _show_plan("reviewed count", "\n".join(row[0] for row in cursor.fetchall())) and ok
    return ok


def time_get(client, urls: list[str], *, follow: bool = False) -> list[float]:
    timings = []
    for url in urls:
        started = time.perf_counter()
        response = client.get(url, follow=follow)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code not in (200, 302):
            raise SystemExit(f"{url} answered {response.status_code}")
        timings.append(elapsed)
    return timings


def _time_label_saves(client, urls: list[str]) -> list[float]:
    """The autosave POST (verdict, then critique), inside a transaction rolled back at the end so the bench
    database stays as generated and later runs measure the same data."""
    from django.db import transaction

    timings = []
    with transaction.atomic():
        for i, url in enumerate(urls):
            data = {"verdict": "fail"} if i % 2 == 0 else {"critique": f"Wrong date, take {i}"}
            started = time.perf_counter()
            response = client.post(url, data, HTTP_HX_REQUEST="true")
            timings.append((time.perf_counter() - started) * 1000)
            if response.status_code != 200 or b"Saved" not in response.content:
                raise SystemExit(f"{url} answered {response.status_code}")
        transaction.set_rollback(True)
    return timings


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (0 <= q <= 1) of values, by nearest rank."""
    if not 0 <= q <= 1:
        raise ValueError(f"q is a fraction from 0 to 1 (0.95 for p95), got {q!r}")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--rebuild", action="store_true", help="drop and regenerate the bench database")
    args = parser.parse_args()

    admin_url, bench_url = bench_urls(os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"))
    ensure_database(admin_url, args.rebuild)
    setup_django(bench_url)
    populate()

    from django.contrib.auth.models import User
    from django.test import Client
    from django.urls import reverse

    from annotation.models import Project, Trace
    from annotation.queue import encode_cursor

    plans_ok = _explain()
    project = Project.objects.get(slug="bench")
    client = Client()
    client.force_login(User.objects.get(username="bench-expert"))
    rng = random.Random(7)
    n = args.requests
    max_id = Trace.objects.filter(project=project).order_by("-id").values_list("id", flat=True).first()
    min_id = max_id - TRACES + 1
    ids = [rng.randint(min_id, max_id) for _ in range(n)]
    by_id = dict(Trace.objects.filter(pk__in=ids).values_list("pk", "external_id"))
    reviewed_ids = list(
        Trace.objects.filter(project=project, reviewed_at__isnull=False)
        .order_by("reviewed_at")
        .values_list("pk", flat=True)[:: LABELS // n]
    )[:n]
    queue = reverse("review_queue", args=["bench"])
    cases = {
        "queue /review/ (redirect only)": ([f"{queue}?order=random"] * n, False),
        "queue /review/ + trace page": (
            [f"{queue}?order={rng.choice(['random', 'newest', 'oldest'])}" for _ in range(n)],
            True,
        ),
        "queue, source + meta filters": ([f"{queue}?order=random&source=staging&meta=locale=de"] * n, True),
        "trace page": ([reverse("trace_detail", args=["bench", by_id[i]]) + "?order=random" for i in ids], False),
        "j (next unreviewed)": ([reverse("trace_next", args=["bench", i]) + "?order=random" for i in ids], False),
        "k (previous reviewed)": ([reverse("trace_previous", args=["bench", i]) for i in reviewed_ids], False),
        "trace list, first page": ([reverse("trace_list", args=["bench"])] * n, False),
        "project overview": ([reverse("project_detail", args=["bench"])] * n, False),
        "project list": ([reverse("project_list")] * n, False),
    }
    # Warm up: the first request pays for connection set-up and the cached total count.
    for urls, follow in cases.values():
        time_get(client, urls[:3], follow=follow)
    # Pages from anywhere in the million: cursors of random traces, as a reader deep in the list would hold.
    deep = [
        reverse("trace_list", args=["bench"]) + "?" + urlencode({"order": "newest", "after": encode_cursor(t)})
        for t in Trace.objects.filter(pk__in=ids).only("pk", "occurred_at")
    ]
    cases["trace list, page at a cursor"] = (deep, False)

    print(f"\n{TRACES:,} traces, {LABELS:,} labels; {n} requests per page (server time via django.test.Client)")
    print(f"{'page':<36}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}   goal p95 < {GOAL_MS:.0f} ms")
    all_ok = plans_ok
    criterion = project.criteria.order_by("position").first()
    # Each trace gets its verdict, then a critique typed after it: two autosaves per trace.
    saves = [
        reverse("label_save", args=["bench", i, criterion.pk]) + "?order=random" for i in ids[: n // 2] for _ in (0, 1)
    ]
    cases["label autosave (htmx POST)"] = (saves, False)
    for name, (urls, follow) in cases.items():
        if name.startswith("label autosave"):
            timings = _time_label_saves(client, urls)
        else:
            timings = time_get(client, urls, follow=follow)
        p50, p95 = statistics.median(timings), percentile(timings, 0.95)
        ok = p95 < GOAL_MS
        all_ok = all_ok and ok
        verdict = "ok" if ok else "SLOW"
        print(f"{name:<36}{p50:>9.1f}{p95:>9.1f}{max(timings):>9.1f}   {verdict}  ({p95 / GOAL_MS:.2f}× goal)")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
