"""Pages with Redis (cache and broker) up, then down, in the same run: what an outage costs a page.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/redis_down.py [--requests 30]

Starts a redis-server of its own on a free port (killed at the end), points the cache and the broker at it, fills its
own database (`evalstudio_bench_robust`, rebuilt each run: 2,000 traces, labels, notes, an assertion judge), times each
page through Django's test client with Redis up, kills Redis and times them again. Also times starting a judge run
from the page (a broker publish) both ways, and one publish to a dead broker with kombu's default connection retries
(what every enqueue cost before issue 12).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pages import bench_urls, ensure_database  # noqa: E402

BENCH_DB = "evalstudio_bench_robust"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for redis-server")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    base = os.environ.get("DATABASE_URL")
    if not base:
        raise SystemExit("DATABASE_URL must name a PostgreSQL server")
    admin, bench = bench_urls(base, BENCH_DB)
    ensure_database(admin, rebuild=True, name=BENCH_DB)

    port = free_port()
    folder = tempfile.mkdtemp(prefix="evalstudio-bench-redis-")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
    )
    import redis

    def answers() -> bool:
        try:
            return bool(redis.Redis(port=port, socket_connect_timeout=0.2).ping())
        except redis.ConnectionError:
            return False

    try:
        wait_for(answers, 10)
        os.environ.update(
            DATABASE_URL=bench,
            REDIS_URL=f"redis://127.0.0.1:{port}/0",
            SECRET_KEY=os.environ.get("SECRET_KEY", "insecure-bench-only-key"),
            DEBUG="0",
            DJANGO_SETTINGS_MODULE="evalstudio.settings",
            LOG_LEVEL="ERROR",
        )
        os.environ.pop("CELERY_BROKER_URL", None)
        import django

        django.setup()
        return run(args.requests, port, server, answers)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def run(requests: int, port: int, server: subprocess.Popen, answers) -> int:
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from django.test.utils import setup_test_environment

    setup_test_environment()
    settings.ALLOWED_HOSTS = ["testserver"]
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    call_command("migrate", verbosity=0)

    from annotation.models import Label, Note, Trace
    from annotation.services import criterion_create, project_create
    from judges.models import JudgeRun
    from judges.services import judge_create
    from tests.factories import make_user

    expert = make_user("bench-expert")
    project = project_create(slug="bench", name="Bench", expert=expert)
    criterion = criterion_create(project=project, name="no_apology", definition="Fail when it apologises.")
    Trace.objects.bulk_create(
        Trace(
            project=project,
            external_id=f"t-{i}",
            input=f"Question {i}?",
            output="Sorry." if i % 5 == 0 else f"Answer {i}.",
            shuffle_key=project.shuffle_key(f"t-{i}"),
            source="production" if i % 2 else "test",
        )
        for i in range(2000)
    )
    traces = list(Trace.objects.filter(project=project).order_by("pk")[:400])
    Label.objects.bulk_create(
        Label(trace=t, criterion=criterion, verdict="fail" if t.output == "Sorry." else "pass", author=expert)
        for t in traces
    )
    Note.objects.bulk_create(Note(trace=t, author=expert, text=f"note on {t.external_id}") for t in traces[:200])
    judge = judge_create(
        project=project,
        criterion=criterion,
        name="sorry",
        kind="assertion",
        config={"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False},
        user=expert,
    )
    client = Client()
    client.force_login(expert)
    pages = {
        "project": "/projects/bench/",
        "trace": f"/projects/bench/traces/{traces[3].external_id}/",
        "review queue": "/projects/bench/review/",
        "failure modes": "/projects/bench/failure-modes/",
        "judges": "/projects/bench/judges/",
        "monitoring": "/projects/bench/monitoring/",
    }

    def timed(name: str, url: str) -> list[float]:
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = client.get(url)
            times.append((time.perf_counter() - started) * 1000)
            if response.status_code not in (200, 302):
                raise SystemExit(f"{name}: {response.status_code}")
        return times

    def start_run() -> float:
        started = time.perf_counter()
        response = client.post(f"/projects/bench/judges/{judge.pk}/runs/", {"version": "1", "split": "all"})
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 302, response.status_code
        JudgeRun.objects.all().delete()
        return elapsed

    for url in pages.values():
        client.get(url)  # warm
    up = {name: timed(name, url) for name, url in pages.items()}
    up_start = [start_run() for _ in range(5)]

    server.kill()
    server.wait()
    wait_for(lambda: not answers(), 5)
    down = {name: timed(name, url) for name, url in pages.items()}
    down_start = [start_run() for _ in range(5)]

    # What a publish to the dead broker cost before: kombu's connection retries (no max_retries transport option).
    from kombu import Connection

    legacy = Connection(f"redis://127.0.0.1:{port}/0")
    started = time.perf_counter()
    with contextlib.suppress(Exception):  # the refusal is the point
        _ = legacy.default_channel  # connects with kombu's default failover retries
    legacy_ms = (time.perf_counter() - started) * 1000

    print(f"{'page':<16}{'Redis up p50 ms':>17}{'Redis down p50 ms':>19}{'down p95 ms':>13}")
    for name in pages:
        p95 = statistics.quantiles(down[name], n=20)[-1]
        print(f"{name:<16}{statistics.median(up[name]):>17.1f}{statistics.median(down[name]):>19.1f}{p95:>13.1f}")
    print(
        f"{'start a run':<16}{statistics.median(up_start):>17.1f}{statistics.median(down_start):>19.1f}"
        f"{'':>13}  (publish before issue 12, dead broker: {legacy_ms:,.0f} ms)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
