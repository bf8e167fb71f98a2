"""The coding board at scale: 1,000,000 traces and 200,000 notes (half of them not coded yet) in PostgreSQL.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/coding.py [--requests 30] [--rebuild]

Writes into its own database (`evalstudio_bench_coding`), filled like the page benchmark's (bench/pages.py) and
then given 40 failure modes and 200,000 notes on the reviewed traces, 100,000 of them coded. One note in ten says
"refund", one in 20,000 says "chargeback": a common and a rare word for the text filter. Times the board (first
page, a deep page, filters, the coded toggle), the note query alone (without the Pareto chart's counts), and the
bulk assign of 50 notes (rolled back). Prints EXPLAIN for the note query (first page, and filtered).
Goal: p95 < 300 ms for the board, like the other taxonomy pages.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from urllib.parse import urlsplit, urlunsplit

import pages

CODING_DB = "evalstudio_bench_coding"
MODES = 40
NOTES = 200_000
GOAL_MS = 300.0


def ensure_database(admin_url: str, rebuild: bool) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [CODING_DB]).fetchone()
        if exists and rebuild:
            conn.execute(f'DROP DATABASE "{CODING_DB}" WITH (FORCE)')
            exists = None
        if not exists:
            conn.execute(f'CREATE DATABASE "{CODING_DB}"')


def add_notes() -> None:
    from django.db import connection

    from annotation.models import FailureMode, Note, Project

    project = Project.objects.get(slug="bench")
    if Note.objects.filter(trace__project=project).count() >= NOTES:
        print(f"reusing {CODING_DB}: {NOTES:,} notes already there", flush=True)
        return
    started = time.monotonic()
    FailureMode.objects.filter(project=project).delete()
    Note.objects.filter(trace__project=project).delete()
    modes = FailureMode.objects.bulk_create(
        FailureMode(project=project, name=f"mode-{i:02d}", definition=f"Failure mode {i}") for i in range(MODES)
    )
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO annotation_note (trace_id, author_id, text, created_at, updated_at)
            SELECT t.id, %(author)s,
                   CASE WHEN (t.rn * 2 + n) %% 20000 = 7 THEN 'Disputes a chargeback the customer never filed'
                        WHEN (t.rn * 2 + n) %% 10 = 3 THEN 'Promises a refund the policy does not allow'
                        ELSE 'Observation ' || n || ' on trace ' || t.id || ': the tone is off' END,
                   t.reviewed_at, t.reviewed_at
            FROM (SELECT id, reviewed_at, row_number() OVER (ORDER BY id) AS rn
                  FROM annotation_trace WHERE project_id = %(project)s AND reviewed_at IS NOT NULL) t
            CROSS JOIN generate_series(1, 2) AS n
            WHERE (t.rn - 1) * 2 + n <= %(notes)s
            ORDER BY t.reviewed_at, n
            """,
            {"author": project.expert_id, "project": project.pk, "notes": NOTES},
        )
        # Every other note is coded, with a 1/rank mode frequency; the rest wait on the board.
        cursor.execute(
            """
            INSERT INTO annotation_note_failure_modes (note_id, failuremode_id, trace_id, created_at)
            SELECT id, (%(modes)s::bigint[])[
                1 + (floor(power(%(n)s + 1, ('x' || substr(md5('m' || id), 1, 8))::bit(32)::bigint / 4294967296.0))
                     ::int - 1) %% %(n)s], trace_id, now()
            FROM annotation_note WHERE id %% 2 = 0
            """,
            {"modes": [m.pk for m in modes], "n": MODES},
        )
    connection.ensure_connection()
    previous = connection.get_autocommit()
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE annotation_note")
        cursor.execute("VACUUM ANALYZE annotation_note_failure_modes")
        cursor.execute("ANALYZE annotation_failuremode")
    connection.set_autocommit(previous)
    print(f"added {NOTES:,} notes in {time.monotonic() - started:.0f} s", flush=True)


def time_calls(call, n: int) -> list[float]:
    timings = []
    for _ in range(n):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--rebuild", action="store_true", help="drop the database and build it again")
    args = parser.parse_args()

    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    admin_url, _ = pages.bench_urls(base)
    ensure_database(admin_url, args.rebuild)
    pages.setup_django(urlunsplit(urlsplit(admin_url)._replace(path=f"/{CODING_DB}")))
    pages.populate()
    add_notes()

    from django.contrib.auth.models import User
    from django.db import connection, transaction
    from django.http import QueryDict
    from django.test import Client

    from annotation.coding_board import BoardParams, board_page, board_queryset
    from annotation.models import FailureMode, Note, NoteFailureMode, Project

    project = Project.objects.get(slug="bench")
    client = Client()
    client.force_login(User.objects.get(username="bench-expert"))
    n = args.requests
    middle = Note.objects.filter(trace__project=project).order_by("pk").values_list("pk", flat=True)[NOTES // 2]
    board = "/projects/bench/failure-modes/coding/"
    cases = {
        "board, first page": board,
        "board, page at 100k": f"{board}?after={middle}",
        "board, filter 'refund'": f"{board}?q=refund",
        "board, filter 'chargeback'": f"{board}?q=chargeback",
        "board, filter no match": f"{board}?q=zzzz-no-such-text",
        "board, coded too": f"{board}?coded=1",
    }
    from annotation.coding_board import walk_the_index

    for label, query in [("first page", ""), ("filter 'refund'", "q=refund")]:
        queryset = board_queryset(project, BoardParams.from_query(QueryDict(query))).order_by("-pk")
        plan_sql, plan_params = queryset.values("pk")[:51].query.sql_with_params()
        with walk_the_index(), connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN ANALYZE {plan_sql}", plan_params)
            print(f"\nEXPLAIN ANALYZE, uncoded notes, {label}:")
            print("\n".join("  " + row[0] for row in cursor.fetchall()))

    print(f"\n1,000,000 traces, {NOTES:,} notes (half uncoded), {MODES} modes; {n} requests each (server time)")
    print(f"{'case':<34}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}   goal p95 < {GOAL_MS:.0f} ms")
    all_ok = True

    def report(name: str, timings: list[float], goal: float | None = GOAL_MS) -> None:
        nonlocal all_ok
        p50, p95 = statistics.median(timings), pages.percentile(timings, 0.95)
        verdict = ""
        if goal is not None:
            ok = p95 < goal
            all_ok = all_ok and ok
            verdict = f"{'ok' if ok else 'SLOW'}  ({p95 / goal:.2f}× goal)"
        print(f"{name:<34}{p50:>9.1f}{p95:>9.1f}{max(timings):>9.1f}   {verdict}", flush=True)

    for name, url in cases.items():
        pages.time_get(client, [url] * 2)  # warm-up
        report(name, pages.time_get(client, [url] * n))

    for name, query in [("notes only, first page", ""), ("notes only, filter no match", "q=zzzz-no-such-text")]:
        params = BoardParams.from_query(QueryDict(query))
        report(name, time_calls(lambda params=params: board_page(project=project, params=params), n), None)

    # The bulk action on 50 uncoded notes, rolled back each time so every round codes the same notes.
    ids = list(
        Note.objects.filter(trace__project=project)
        .exclude(pk__in=NoteFailureMode.objects.values("note_id"))
        .order_by("-pk")
        .values_list("pk", flat=True)[:50]
    )
    mode = FailureMode.objects.filter(project=project).order_by("pk").last()
    timings = []
    for _ in range(n):
        with transaction.atomic():
            started = time.perf_counter()
            response = client.post(f"{board}assign/", {"note": ids, "mode": mode.pk}, HTTP_HX_REQUEST="true")
            timings.append((time.perf_counter() - started) * 1000)
            if b"Coded 50 notes" not in response.content:
                raise SystemExit(f"assign answered {response.status_code}")
            transaction.set_rollback(True)
    report("assign 50 notes (htmx, re-render)", timings)
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
