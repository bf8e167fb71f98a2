"""The loop's dashboard at scale: the project page with and without its loop panel, and the cadence route.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/cadence.py [--traces N] [--requests 20]

Uses its own database (`evalstudio_bench_cadence`), filled by the page benchmark's populate (traces, reviewed ones
with labels) plus a taxonomy: 12 failure modes coded on the failing reviewed traces, a criterion per mode with an
assertion judge, two review sessions (a cycle of 100, an outlier review of 15). Prints medians and p95 of the
project page without the loop panel (the baseline, same run), with it, and of `GET /api/v1/projects/bench/cadence`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import pages as bench_pages

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "evalstudio_bench_cadence"
MODES = 12


def add_taxonomy() -> None:
    from django.db import connection

    from annotation.models import Criterion, FailureMode, Project, ReviewSession, ReviewSessionTrace
    from judges.services import judge_create

    project = Project.objects.get(slug="bench")
    if FailureMode.objects.filter(project=project).exists():
        return
    expert = project.expert
    modes = [FailureMode.objects.create(project=project, name=f"mode-{i}") for i in range(MODES)]
    with connection.cursor() as cursor:
        # One note per failing reviewed trace, coded to a mode by a skewed rule (a Pareto-like spread).
        cursor.execute(
            """
            INSERT INTO annotation_note (trace_id, author_id, text, created_at, updated_at)
            SELECT l.trace_id, %(author)s, 'Claims a date it cannot know', now(), now()
            FROM annotation_label l JOIN annotation_trace t ON t.id = l.trace_id
            WHERE t.project_id = %(project)s AND l.verdict = 'fail'
            """,
            {"author": expert.pk, "project": project.pk},
        )
        cursor.execute(
            """
            INSERT INTO annotation_note_failure_modes (note_id, failuremode_id, trace_id, created_at)
            SELECT n.id, (%(modes)s::bigint[])[1 + floor(sqrt(n.id %% %(sq)s))::int], n.trace_id, now()
            FROM annotation_note n JOIN annotation_trace t ON t.id = n.trace_id WHERE t.project_id = %(project)s
            """,
            {"modes": [m.pk for m in modes], "sq": MODES * MODES, "project": project.pk},
        )
    for i, mode in enumerate(modes):
        criterion = Criterion.objects.create(project=project, name=f"check-{i}", failure_mode=mode, position=10 + i)
        judge_create(
            project=project,
            criterion=criterion,
            name=f"judge-{i}",
            kind="assertion",
            config={"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False},
        )
    reviewed = list(project.traces.filter(reviewed_at__isnull=False).order_by("id").values_list("id", flat=True)[:115])
    for name, strategy, ids in (("cycle", "random", reviewed[:100]), ("outliers", "longest", reviewed[100:])):
        session = ReviewSession.objects.create(
            project=project, name=name, strategy=strategy, size=len(ids), created_by=expert
        )
        ReviewSessionTrace.objects.bulk_create(
            ReviewSessionTrace(session=session, trace_id=trace_id, position=n) for n, trace_id in enumerate(ids)
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--rebuild", action="store_true")
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/test")
    admin_url, bench_url = bench_pages.bench_urls(base, BENCH_DB)
    bench_pages.ensure_database(admin_url, args.rebuild, BENCH_DB)
    bench_pages.setup_django(bench_url)
    bench_pages.TRACES, bench_pages.LABELS, bench_pages.BENCH_DB = args.traces, args.traces // 10, BENCH_DB
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        # The page benchmark's bulk label INSERT predates labels recording their definition version; in this
        # database only, v1 is the column's default so that INSERT still runs.
        cursor.execute("ALTER TABLE annotation_label ALTER COLUMN criterion_version SET DEFAULT 1")
    bench_pages.populate()
    add_taxonomy()

    from django.contrib.auth.models import User
    from django.test import Client

    from annotation.panels import panel_register, panel_unregister
    from judges.apps import _loop_panel

    client = Client()
    client.force_login(User.objects.get(username="bench-expert"))
    page, route = ["/projects/bench/"] * args.requests, ["/api/v1/projects/bench/cadence"] * args.requests
    bench_pages.time_get(client, page[:3] + route[:3])  # warm caches (the taxonomy counts are cached)
    rows = []
    # Interleaved rounds, so load from other processes falls on both sides alike.
    without, with_panel, api = [], [], []
    for _ in range(args.requests):
        panel_unregister(slot="project", name="loop")
        without += bench_pages.time_get(client, page[:1])
        panel_register(slot="project", name="loop", template="judges/_loop_panel.html", context=_loop_panel, order=50)
        with_panel += bench_pages.time_get(client, page[:1])
        api += bench_pages.time_get(client, route[:1])
    for name, timings in (
        ("project page, no loop panel (baseline)", without),
        ("project page with the loop panel", with_panel),
        ("GET …/cadence", api),
    ):
        rows.append((name, statistics.median(timings), bench_pages.percentile(timings, 0.95)))
    reviewed = args.traces // 10
    print(f"{args.traces:,} traces, {reviewed:,} reviewed and labelled, {MODES} modes, {args.requests} requests")
    for name, median, p95 in rows:
        print(f"{name:45s} median {median:7.1f} ms   p95 {p95:7.1f} ms")
    print(f"at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
