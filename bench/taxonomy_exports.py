"""Taxonomy downloads at scale: the notes export (200,000 notes) and the modes export, on bench/taxonomy.py's data.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/taxonomy_exports.py

Reads only: it needs the database bench/taxonomy.py builds (run that first). Each download goes through Django's
test client and is consumed piece by piece, as a browser would: time to the first piece and to the end. Memory is
measured on the notes generators (tracemalloc, a separate pass as it slows the run): the peak after two chunks
against the peak after all of them, which stays the same when the export streams.
Goals: a download in < 20 s (it is a file, not a page), and a peak that does not grow with the number of notes.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import tracemalloc
from urllib.parse import urlsplit, urlunsplit

import pages
from taxonomy import TAXONOMY_DB

GOAL_SECONDS = 20.0
# The peak after every chunk may exceed the peak after two by this factor at most.
GOAL_GROWTH = 1.2


def consume(client, url: str) -> tuple[float, float, int]:
    """(seconds to the first piece, seconds to the end, bytes) for one download."""
    started = time.perf_counter()
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    first = None
    size = 0
    pieces = response.streaming_content if response.streaming else [response.content]
    for piece in pieces:
        if first is None:
            first = time.perf_counter() - started
        size += len(piece)
    return first or 0.0, time.perf_counter() - started, size


def peak_mb(pieces) -> float:
    tracemalloc.start()
    try:
        for _ in pieces:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak / 1e6


def main() -> int:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    _, pages_url = pages.bench_urls(base)
    pages.setup_django(urlunsplit(urlsplit(pages_url)._replace(path=f"/{TAXONOMY_DB}")))
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test import Client

    from annotation.models import Project
    from annotation.taxonomy_io import notes_export_csv, notes_export_json

    try:
        connection.ensure_connection()
    except Exception as exc:  # noqa: BLE001 - any connection failure means the same thing here
        print(f"no {TAXONOMY_DB} database ({exc}); run bench/taxonomy.py first", file=sys.stderr)
        return 2

    client = Client()
    client.force_login(User.objects.get(username="bench-expert"))
    project = Project.objects.get(slug="bench")
    all_ok = True
    print(f"{'download':<14}{'first s':>9}{'total s':>9}{'MB':>8}   goal < {GOAL_SECONDS:.0f} s")
    for name, url in {
        "notes CSV": "/projects/bench/failure-modes/notes.csv",
        "notes JSON": "/projects/bench/failure-modes/notes.json",
        "modes CSV": "/projects/bench/failure-modes/export.csv",
        "modes JSON": "/projects/bench/failure-modes/export.json",
    }.items():
        first, total, size = consume(client, url)
        ok = total < GOAL_SECONDS
        all_ok = all_ok and ok
        print(f"{name:<14}{first:>9.2f}{total:>9.2f}{size / 1e6:>8.1f}   {'ok' if ok else 'SLOW'}")

    print(f"\n{'notes export':<14}{'peak MB, 2 chunks':>19}{'all chunks':>12}   goal: growth < {GOAL_GROWTH}×")
    for name, export in {"CSV": notes_export_csv, "JSON": notes_export_json}.items():
        two = peak_mb(itertools.islice(export(project=project), 2))
        everything = peak_mb(export(project=project))
        ok = everything < GOAL_GROWTH * two
        all_ok = all_ok and ok
        print(f"{name:<14}{two:>19.1f}{everything:>12.1f}   {'ok' if ok else 'GROWS'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
