"""Suggested groupings at scale: 5,000 (and 10,000) uncoded notes clustered through the real service path.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/clustering.py [--sizes 5000,10000]

Each size runs in a fresh process with its own database (`evalstudio_bench_clustering`, recreated): varied
failure notes from `clustering_notes.py` (14 themes, Zipf-like frequency, typos, a few non-English notes) on as many
traces, then `suggestion_run_enqueue` with the task executed in-process (CELERY_TASK_ALWAYS_EAGER), i.e. the worker's
claim, the SQL read of uncoded notes, clustering, and writing the suggestions. Reports wall time from start to DONE,
the process's peak RSS (and its growth over the loaded baseline), groups, purity against the generated themes
(share of grouped notes whose theme is their group's majority theme) and coverage (share of notes in some group).
Goal: 5,000 notes in < 30 s.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pages

BENCH_DB = "evalstudio_bench_clustering"
REPO = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 30.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def recreate_database(admin_url: str) -> None:
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def run_one(size: int) -> None:
    """Fill the database with `size` notes and cluster them; prints one tab-separated result line."""
    from clustering_notes import generate_notes
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import transaction

    from annotation.models import Note, SuggestionRun, Trace
    from annotation.services import project_create
    from annotation.suggestions import suggestion_run_enqueue

    call_command("migrate", verbosity=0)
    expert = User.objects.create_user("bench-expert")
    project = project_create(slug="bench", name="Bench", expert=expert)
    generated = generate_notes(size)
    traces = Trace.objects.bulk_create(
        Trace(project=project, external_id=f"t-{i}", shuffle_key=project.shuffle_key(f"t-{i}"), input="q", output="a")
        for i in range(size)
    )
    notes = Note.objects.bulk_create(
        Note(trace=trace, author=expert, text=text) for trace, (_theme, text) in zip(traces, generated, strict=True)
    )
    theme_of = {note.pk: theme for note, (theme, _text) in zip(notes, generated, strict=True)}

    baseline = peak_rss_mb()
    started = time.monotonic()
    with transaction.atomic():
        run = suggestion_run_enqueue(project=project, user=expert, seed=0)
    # Eager mode ran the task at commit; the run must be DONE by now.
    elapsed = time.monotonic() - started
    run.refresh_from_db()
    if run.status != SuggestionRun.Status.DONE:
        raise SystemExit(f"run ended {run.status}: {run.error}")
    grouped = majority = 0
    groups = 0
    for suggestion in run.suggestions.prefetch_related("notes"):
        themes = Counter(theme_of[note.pk] for note in suggestion.notes.all())
        grouped += sum(themes.values())
        majority += themes.most_common(1)[0][1]
        groups += 1
    peak = peak_rss_mb()
    print(
        f"RESULT\t{size}\t{elapsed:.2f}\t{peak:.0f}\t{peak - baseline:.0f}\t{groups}\t"
        f"{majority / grouped if grouped else 0:.3f}\t{grouped / size:.3f}\t{'; '.join(run.params.get('notices', []))}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5000,10000")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    admin_url, _ = pages.bench_urls(base)
    bench_url = urlunsplit(urlsplit(base)._replace(path=f"/{BENCH_DB}"))

    if args.one:
        os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
        os.environ.pop("REDIS_URL", None)
        pages.setup_django(bench_url)
        run_one(args.one)
        return 0

    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        recreate_database(admin_url)
        # A fresh process per size, so the peak RSS of one size is not the leftover of another.
        result = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--one", str(size)],
            capture_output=True, text=True, check=False, env={**os.environ, "PYTHONPATH": str(REPO)},
        )  # fmt: skip
        lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT\t")]
        if result.returncode != 0 or not lines:
            print(result.stdout, result.stderr, file=sys.stderr)
            return 1
        rows.append(lines[0].split("\t")[1:])

    goal = f"goal: 5,000 notes < {GOAL_SECONDS:.0f} s"
    print(f"\nsuggested groupings through suggestion_run_enqueue (eager task); {goal}")
    header = f"{'notes':>7}{'seconds':>9}{'peak MB':>9}{'+MB':>6}{'groups':>8}{'purity':>8}{'coverage':>10}  time/goal"
    print(header)
    for size, seconds, peak, growth, groups, purity, coverage, notices in rows:
        ratio = float(seconds) / GOAL_SECONDS
        figures = f"{peak:>9}{growth:>6}{groups:>8}{purity:>8}{coverage:>10}"
        print(f"{int(size):>7,}{float(seconds):>9.1f}{figures}  {ratio:.2f}")
        if notices:
            print(f"         notices: {notices}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
