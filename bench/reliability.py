"""The expert's reliability at scale: the reliability page, its REST route and a judge run's self-agreement ceiling.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/reliability.py [--requests 40] [--rebuild]
        [--before REF]

Uses its own database (`evalstudio_bench_reliability`), filled by the page benchmark's populate (1,000,000 traces,
100,000 of them reviewed with a label) plus what the reliability numbers read, as the review page records it: a
history (LabelChange) for every label — the first verdict with its sitting position, seconds on the trace, minutes
into the sitting and queue (`via`, mostly the random queue), 8% without a sitting as imports have, 5% changed to
the other verdict days later and 3% with a later critique edit — 2,000 blind re-reviews (SelfReview, 12% differing,
three quarters of those decided) and a calibration rater with 500 RaterLabels. Everything is generated in SQL
(`INSERT … SELECT`) from md5 of the ids, so a rebuild yields the same data.

Prints the slowest queries of one page request with their EXPLAIN ANALYZE, then p50/p95 server time (Django's test
client) of `/projects/bench/reliability/`, `GET /api/v1/projects/bench/reliability` and `self_agreement` for one
criterion (a judge run page's ceiling). Goal: p95 < 300 ms, the taxonomy page's. With `--before REF` the same is
timed, interleaved, with judges/reliability.py and annotation/calibration.py as they were at git REF (before and
after a change in one run, on one database).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import types
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import pages as bench_pages

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BENCH_DB = "evalstudio_bench_reliability"
SELF_REVIEWS = 2_000  # one in 50 labels re-reviewed blind
RATER_SAMPLE = 500
GOAL_MS = 300.0
SLOWEST = 5  # queries shown with their plan

# md5 of a tagged id as a non-negative int: deterministic "random" choices in SQL.
_HASH = "('x' || substr(md5(%s || {col}), 1, 7))::bit(28)::int"


def _hash(tag: str, col: str) -> str:
    return _HASH.replace("%s", f"'{tag}:'").format(col=col)


def add_reliability() -> None:
    """Label history with sitting fields, blind re-reviews and a calibration rater, once per database."""
    from django.contrib.auth.models import User
    from django.db import connection

    from annotation.models import CalibrationRater, LabelChange, Membership, Project, Role

    project = Project.objects.get(slug="bench")
    if LabelChange.objects.filter(label__criterion__project=project).exists():
        print(f"reusing {BENCH_DB}: label history, re-reviews and rater labels already there", flush=True)
        return
    started = time.monotonic()
    rater_user = User.objects.filter(username="bench-rater").first() or User.objects.create_user(
        "bench-rater", password="bench"
    )
    Membership.objects.get_or_create(project=project, user=rater_user, defaults={"role": Role.VIEWER})
    rater = CalibrationRater.objects.create(
        project=project, user=rater_user, sample_size=RATER_SAMPLE, invited_by=project.expert
    )
    h = _hash("rel", "l.id")
    with connection.cursor() as cursor:
        # Each label's first verdict, in review order: sittings of 150 traces (so every fatigue bucket is filled),
        # 8% without a sitting (imported), the queue mostly random. A label changed later first had the other verdict.
        # Each records its criterion and is its label's first entry, as label_submit writes them.
        cursor.execute(
            f"""
            INSERT INTO annotation_labelchange (label_id, verdict, critique, author_id, changed_at, criterion_version,
                seconds_on_trace, sitting_position, sitting_minutes, via, criterion_id, is_first)
            SELECT s.id,
                   CASE WHEN (s.h / 100) %% 100 < 5 THEN (CASE s.verdict WHEN 'fail' THEN 'pass' ELSE 'fail' END)
                        ELSE s.verdict END,
                   s.critique, s.author_id, s.created_at, 1,
                   CASE WHEN s.h %% 100 >= 8 THEN 6 + (s.h / 10000) %% 90 + ((s.rn - 1) %% 150) * 0.1 END,
                   CASE WHEN s.h %% 100 >= 8 THEN 1 + (s.rn - 1) %% 150 END,
                   CASE WHEN s.h %% 100 >= 8 THEN round((((s.rn - 1) %% 150) * 0.75)::numeric, 2) END,
                   CASE WHEN s.h %% 100 < 8 THEN ''
                        WHEN s.h %% 100 < 70 THEN 'random'
                        WHEN s.h %% 100 < 82 THEN 'newest'
                        WHEN s.h %% 100 < 86 THEN 'oldest'
                        WHEN s.h %% 100 < 93 THEN 'session:random'
                        ELSE 'session:longest' END,
                   s.criterion_id, true
            FROM (SELECT l.*, {h} AS h, row_number() OVER (ORDER BY l.created_at, l.id) AS rn
                  FROM annotation_label l JOIN annotation_criterion c ON c.id = l.criterion_id
                  WHERE c.project_id = %(project)s) s
            """,
            {"project": project.pk},
        )
        # Later entries, 1–10 days on, in a later sitting: the verdict as it stands now (5% of labels) or a
        # critique edit under the same verdict (3%).
        cursor.execute(
            f"""
            INSERT INTO annotation_labelchange (label_id, verdict, critique, author_id, changed_at, criterion_version,
                seconds_on_trace, sitting_position, sitting_minutes, via, criterion_id, is_first)
            SELECT l.id, l.verdict,
                   CASE WHEN ({h} / 100) %% 100 < 5 THEN l.critique ELSE l.critique || ' (edited)' END,
                   l.author_id, l.created_at + (1 + {h} %% 10) * interval '1 day', 1,
                   20 + {h} %% 60, 1 + {h} %% 40, round((({h} %% 40) * 0.8)::numeric, 2), 'random',
                   l.criterion_id, false
            FROM annotation_label l JOIN annotation_criterion c ON c.id = l.criterion_id
            WHERE c.project_id = %(project)s AND ({h} / 100) %% 100 < 8
            """,
            {"project": project.pk},
        )
        # Blind re-reviews of one label in 50, a week or more after it; 12% differ, three quarters of those decided.
        hs = _hash("self", "l.id")
        cursor.execute(
            f"""
            INSERT INTO annotation_selfreview (trace_id, criterion_id, author_id, then_verdict, then_critique, then_at,
                then_version, verdict, critique, criterion_version, created_at, kept, reason, decided_at)
            SELECT l.trace_id, l.criterion_id, l.author_id, l.verdict, l.critique, l.updated_at, 1,
                   CASE WHEN s.h %% 100 < 12 THEN (CASE l.verdict WHEN 'fail' THEN 'pass' ELSE 'fail' END)
                        ELSE l.verdict END,
                   CASE WHEN s.h %% 100 < 12 THEN 'Read it again: not sure this is wrong.' ELSE '' END,
                   1, l.updated_at + interval '7 days' + (s.h %% 72) * interval '1 hour',
                   CASE WHEN s.h %% 100 < 9 THEN 'then' ELSE '' END,
                   CASE WHEN s.h %% 100 < 9 THEN 'The definition says a missing date is a fail.' ELSE '' END,
                   CASE WHEN s.h %% 100 < 9 THEN l.updated_at + interval '8 days' + (s.h %% 72) * interval '1 hour' END
            FROM annotation_label l JOIN annotation_criterion c ON c.id = l.criterion_id
                 CROSS JOIN LATERAL (SELECT {hs} / 50 AS h) s
            WHERE c.project_id = %(project)s AND {hs} %% 50 = 0
            """,
            {"project": project.pk},
        )
        # The rater's sample is the expert's labelled traces in the stored random order (annotation.calibration);
        # they label every criterion the expert labelled there, agreeing 85% of the time.
        hr = _hash("rater", "l.id")
        cursor.execute(
            f"""
            INSERT INTO annotation_raterlabel (rater_id, trace_id, criterion_id, verdict, critique, created_at)
            SELECT %(rater)s, l.trace_id, l.criterion_id,
                   CASE WHEN {hr} %% 100 < 15 THEN (CASE l.verdict WHEN 'fail' THEN 'pass' ELSE 'fail' END)
                        ELSE l.verdict END,
                   '', now()
            FROM annotation_label l
            WHERE l.trace_id IN (SELECT t.id FROM annotation_trace t
                                 WHERE t.project_id = %(project)s AND t.reviewed_at IS NOT NULL
                                 ORDER BY t.shuffle_key, t.id LIMIT %(sample)s)
            """,
            {"project": project.pk, "rater": rater.pk, "sample": RATER_SAMPLE},
        )
    print(f"added label history, re-reviews and rater labels in {time.monotonic() - started:.0f} s", flush=True)


def vacuum() -> None:
    """Fresh statistics and visibility maps for what the page reads (as autovacuum keeps them on a server), also
    after a migration rewrote rows of an existing bench database: index-only scans need them."""
    from django.db import connection

    connection.ensure_connection()
    previous = connection.get_autocommit()
    connection.set_autocommit(True)
    with connection.cursor() as cursor:
        for table in ("annotation_labelchange", "annotation_selfreview", "annotation_raterlabel", "annotation_trace"):
            cursor.execute(f"VACUUM ANALYZE {table}")
    connection.set_autocommit(previous)


def slowest_queries(client, url: str) -> list[tuple[float, str, tuple]]:
    """The queries one request runs, slowest first, as (ms, sql, params)."""
    from django.db import connection

    seen: list[tuple[float, str, tuple]] = []

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            seen.append(((time.perf_counter() - started) * 1000, sql, params))

    with connection.execute_wrapper(timed):
        client.get(url)
    return sorted(seen, key=lambda row: -row[0])


def explain_slowest(client, url: str) -> None:
    from django.db import connection

    queries = slowest_queries(client, url)
    total = sum(ms for ms, _, _ in queries)
    print(f"\n{url}: {len(queries)} queries, {total:.0f} ms in the database; the slowest {SLOWEST}:")
    for ms, sql, params in queries[:SLOWEST]:
        print(f"\n  {ms:7.1f} ms  {sql[:300]}{'…' if len(sql) > 300 else ''}")
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}", params)
            for (line,) in cursor.fetchall():
                print(f"      {line}")


# What a change to the reliability numbers touches: with --before REF, these modules as they were at REF are timed
# beside the current ones, in the same run on the same database (its indexes help only the current queries).
BEFORE_PATHS = ("judges/reliability.py", "annotation/calibration.py")
RELIABILITY_NAMES = ("drift", "fatigue", "rater_agreement", "self_agreement")


def load_before(ref: str) -> dict[str, types.ModuleType]:
    """The modules of BEFORE_PATHS as they were at the git revision `ref`, loaded beside the current ones."""
    modules = {}
    for path in BEFORE_PATHS:
        source = subprocess.run(
            ["git", "show", f"{ref}:{path}"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout
        name = path.removesuffix(".py").replace("/", ".") + "_before"
        module = types.ModuleType(name)
        module.__file__ = f"{ref}:{path}"
        sys.modules[name] = module  # dataclasses look their module up while the class is made
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        modules[path] = module
    return modules


@contextmanager
def swapped(before: dict[str, types.ModuleType]) -> Iterator[types.ModuleType]:
    """Inside, the page, the API and the run page call the `before` functions; yields the reliability module."""
    import annotation.calibration
    import judges.api
    import judges.views
    import judges.views_reliability

    reliability = before["judges/reliability.py"]
    targets = [
        (judges.views_reliability, RELIABILITY_NAMES, reliability),
        (judges.api, RELIABILITY_NAMES, reliability),
        (judges.views, ("self_agreement",), reliability),
        (annotation.calibration, ("_sample",), before["annotation/calibration.py"]),
    ]
    saved = [(module, name, getattr(module, name)) for module, names, _ in targets for name in names]
    for module, names, source in targets:
        for name in names:
            setattr(module, name, getattr(source, name))
    try:
        yield reliability
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--rebuild", action="store_true", help="drop and regenerate the bench database")
    parser.add_argument("--no-explain", action="store_true", help="skip the slowest queries and their plans")
    parser.add_argument(
        "--before", metavar="REF", help="also time judges.reliability and annotation.calibration as at git REF"
    )
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    admin_url, bench_url = bench_pages.bench_urls(base, BENCH_DB)
    bench_pages.ensure_database(admin_url, args.rebuild, BENCH_DB)
    bench_pages.setup_django(bench_url)
    bench_pages.BENCH_DB = BENCH_DB
    bench_pages.populate()
    add_reliability()
    vacuum()

    from django.contrib.auth.models import User
    from django.test import Client

    import judges.reliability
    from annotation.models import Criterion, LabelChange, Project, RaterLabel, SelfReview
    from annotation.services import api_token_create

    project = Project.objects.get(slug="bench")
    client = Client()
    client.force_login(User.objects.get(username="bench-expert"))
    _, token = api_token_create(project=project, name=f"bench {time.time():.0f}")
    api = Client(headers={"Authorization": f"Bearer {token}"})
    page_url, api_url = "/projects/bench/reliability/", "/api/v1/projects/bench/reliability"
    criterion = Criterion.objects.filter(project=project).order_by("position").first()

    def cases(reliability: types.ModuleType) -> dict[str, Callable[[], object]]:
        return {
            "reliability page": lambda: _checked(client, page_url),
            "GET …/reliability (API)": lambda: _checked(api, api_url),
            "self-agreement ceiling (run page)": lambda: reliability.self_agreement(
                project=project, criterion=criterion
            ),
        }

    # Each variant: a context that puts its code in place, and its cases.
    variants: dict[str, Callable[[], AbstractContextManager[types.ModuleType]]] = {
        "": lambda: nullcontext(judges.reliability)
    }
    if args.before:
        before = load_before(args.before)
        variants = {f" (before, {args.before})": lambda: swapped(before), " (now)": variants[""]}
    for variant in variants.values():  # warm up: connection, templates, imports
        with variant() as reliability:
            for case in cases(reliability).values():
                case()
    if args.before:
        # The change must not move a number: the API's answer, every figure of the page, before and now.
        answers = []
        for variant in variants.values():
            with variant():
                answers.append(api.get(api_url).json())
        print(f"the API answers the same before and now: {'yes' if answers[0] == answers[1] else 'NO'}")
    if not args.no_explain:
        for label, variant in variants.items():
            with variant():
                print(f"\nslowest queries{label}:", end="")
                explain_slowest(client, page_url)

    changes = LabelChange.objects.filter(label__criterion__project=project).count()
    print(
        f"\n{bench_pages.TRACES:,} traces, {bench_pages.LABELS:,} labels, {changes:,} label changes, "
        f"{SelfReview.objects.filter(trace__project=project).count():,} self-reviews, "
        f"{RaterLabel.objects.filter(rater__project=project).count():,} rater labels; {args.requests} requests each"
    )
    print(f"{'':<52}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}   goal p95 < {GOAL_MS:.0f} ms")
    timings: dict[str, list[float]] = {}
    # Interleaved rounds, so load from other processes falls on every case and variant alike.
    for _ in range(args.requests):
        for label, variant in variants.items():
            with variant() as reliability:
                for name, case in cases(reliability).items():
                    started = time.perf_counter()
                    case()
                    timings.setdefault(name + label, []).append((time.perf_counter() - started) * 1000)
    all_ok = True
    for name in sorted(timings, key=lambda key: (key.split(" (")[0] != "reliability page", key)):
        values = timings[name]
        p50, p95 = statistics.median(values), bench_pages.percentile(values, 0.95)
        ok = p95 < GOAL_MS
        if "(before" not in name:
            all_ok = all_ok and ok
        print(f"{name:<52}{p50:>9.1f}{p95:>9.1f}{max(values):>9.1f}   {'ok' if ok else 'SLOW'}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {load}, {os.cpu_count()} cores")
    return 0 if all_ok else 1


def _checked(client, url: str) -> None:
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"{url} answered {response.status_code}")


if __name__ == "__main__":
    sys.exit(main())
