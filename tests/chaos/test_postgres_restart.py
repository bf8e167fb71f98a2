"""Chaos: PostgreSQL restarted under the app. Against a throwaway cluster of the test's own (never the machine's
shared server), migrated once for the module:

- during ingestion through gunicorn, requests in the outage fail cleanly (a 5xx with a message, never a hang) and
  the app answers again after the restart without gunicorn being restarted; the client's retries complete the
  stream exactly once. A restart between requests costs no failed request at all (CONN_HEALTH_CHECKS).
- during a judge run on a real worker, the run completes after the restart without the worker being restarted.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from django.conf import settings

from tests.chaos.processes import (
    ROOT,
    SCRATCH,
    STALE_SECONDS,
    BatchClient,
    Gunicorn,
    PostgresCluster,
    base_env,
    kill_group,
    purge_broker,
    start_worker,
    wait_for,
)
from tests.llm_server import Reply, ScriptedLLMServer

SEED = 20261204
TRACES = 20_000
BATCH = 500
JUDGED = 200
# The client gives a request this long; an answer later than that is a hang.
REQUEST_TIMEOUT = 10
DATABASE_AWAY = "The database is not answering (restarting or unreachable); retry in a few seconds."

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.skipif(not list(Path("/usr/lib/postgresql").glob("*/bin/initdb")), reason="needs initdb / pg_ctl"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[dict[str, Any]]:
    """A migrated cluster with a project and its token, and a scratch folder for the processes' logs."""
    pg = PostgresCluster().init()
    try:
        pg.start()
        pg.create_database("evalstudio")
        env = base_env(DATABASE_URL=pg.url("evalstudio"), DJANGO_SETTINGS_MODULE="evalstudio.settings")
        migrate = [sys.executable, "manage.py", "migrate", "--no-input", "-v0"]
        subprocess.run(migrate, cwd=ROOT, env=env, check=True, capture_output=True, timeout=300)
        seeded = seed(env, "project", "pg")
        yield {"pg": pg, "env": env, "logs": Path(tempfile.mkdtemp(prefix="pg-restart-", dir=SCRATCH)), **seeded}
    finally:
        pg.destroy()


def seed(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.chaos.cluster_seed", *args], cwd=ROOT, env=env, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return json.loads(done.stdout)


def query(pg: PostgresCluster, sql: str, *params: object) -> tuple:
    with psycopg.connect(pg.url("evalstudio"), connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchone()


def test_ingestion_fails_cleanly_while_postgres_is_down_and_recovers_without_restarting_gunicorn(cluster):
    # What makes recovery without a restart possible: persistent connections are health-checked before reuse.
    assert settings.DATABASES["default"]["CONN_HEALTH_CHECKS"] is True
    assert settings.DATABASES["default"]["CONN_MAX_AGE"] > 0
    pg: PostgresCluster = cluster["pg"]
    web = Gunicorn(cluster["env"], log=cluster["logs"] / "gunicorn.log", workers=2).start()
    master_pid = web.process.pid
    traces = [{"id": f"p-{i:06d}", "output": f"ok {i}"} for i in range(TRACES)]
    batches = [traces[at : at + BATCH] for at in range(0, TRACES, BATCH)]
    down_at_batch = random.Random(SEED).randrange(len(batches) // 4, 3 * len(batches) // 4)
    client = BatchClient(port=lambda: web.port, slug="pg", token=cluster["token"], timeout=REQUEST_TIMEOUT)
    outage: dict[str, float] = {}
    going_down = threading.Event()

    def operator() -> None:
        """Stop PostgreSQL (fast: every session is cut) as batch `down_at_batch` goes out; start it again once the
        client has seen its requests fail three times."""
        going_down.wait(timeout=300)
        outage["from"] = time.monotonic()
        pg.stop("fast")
        try:
            wait_for(lambda: len(client.stats.server_errors) + client.stats.connection_errors >= 3, 60, "failures")
        finally:
            pg.start()
            outage["seconds"] = time.monotonic() - outage["from"]

    def back_off() -> None:
        threading.Event().wait(0.2)  # a client's pause before it retries; gunicorn is never restarted

    thread = threading.Thread(target=operator, daemon=True)
    thread.start()
    try:
        for number, batch in enumerate(batches):
            if number == down_at_batch:
                going_down.set()
            client.send(batch, recover=back_off, deadline=90)
        thread.join(timeout=60)
        stats = client.stats

        # A restart while nobody is asking: each gunicorn worker's idle connection is dead, and is replaced before
        # use, so not one request fails (both workers are exercised: requests go to whichever accepts first).
        pg.stop("fast")
        pg.start()
        after = BatchClient(port=lambda: web.port, slug="pg", token=cluster["token"], timeout=REQUEST_TIMEOUT)
        for batch in batches[:6]:
            after.send(batch, recover=back_off)
    finally:
        alive = web.alive
        web.kill()
    assert alive and web.starts == 1 and web.process.pid == master_pid  # never restarted
    assert "seconds" in outage and stats.server_errors, "the outage was not seen by the client"
    assert stats.connection_errors == 0  # gunicorn kept answering: with an error, not a dropped connection
    for status, body, retry_after in stats.server_errors:  # an answer an API client can act on
        assert (status, json.loads(body)["detail"], retry_after) == (503, DATABASE_AWAY, "5"), (status, body)
    assert stats.longest_failure_seconds < REQUEST_TIMEOUT  # failed fast, never hung
    assert stats.acknowledged == len(batches) and stats.accepted + stats.duplicates == TRACES
    assert query(
        pg,
        "SELECT count(*), count(DISTINCT external_id) FROM annotation_trace WHERE project_id = %s",
        cluster["project_id"],
    ) == (TRACES, TRACES)
    assert (after.stats.retried, after.stats.duplicates) == (0, 6 * BATCH)
    print(
        f"\npostgres restart during ingestion: down during batch {down_at_batch + 1}/{len(batches)} for "
        f"{outage['seconds']:.1f} s; failed requests {len(stats.server_errors)} (503, slowest "
        f"{stats.longest_failure_seconds:.2f} s), retried {stats.retried}, acknowledged {stats.acknowledged}; "
        f"stored {TRACES:,} once each; restart between requests: 0 failed of 6"
    )


def test_a_judge_run_completes_after_postgres_restarts_without_restarting_the_worker(cluster):
    pg: PostgresCluster = cluster["pg"]
    rng = random.Random(SEED)
    down_at_calls = rng.randrange(40, 120)
    # Longer than the staleness window: the worker's heartbeats fail for a whole window, not just one beat.
    outage_seconds = STALE_SECONDS + rng.uniform(1, 2)
    answer = json.dumps({"reasoning": "looked", "verdict": "pass"})
    with ScriptedLLMServer(latency=(0.02, 0.05), seed=SEED) as llm:
        llm.respond_with(lambda _request: Reply(content=answer))
        env = {
            **cluster["env"],
            "OPENAI_BASE_URL": llm.base_url,
            "OPENAI_API_KEY": "test",
            "EVALSTUDIO_JUDGE_CONCURRENCY": "2",
            "EVALSTUDIO_RUN_STALE_SECONDS": str(STALE_SECONDS),
        }
        purge_broker()
        # One process, two calls in flight: what a lost database costs in calls paid twice stays small and bounded.
        worker = start_worker(env, log=cluster["logs"] / "worker.log", concurrency=1)
        try:
            run_id = seed(env, "judge-run", "pg", str(JUDGED))["run_id"]
            wait_for(lambda: len(llm.chat_requests) >= down_at_calls, 90, f"{down_at_calls} provider calls")
            pg.stop("fast")
            calls_at_stop = len(llm.chat_requests)
            threading.Event().wait(outage_seconds)  # the outage itself: a chosen length, not a wait for a condition
            pg.start()
            restarted_at = time.monotonic()

            def status() -> str | None:
                found = query(pg, "SELECT status FROM judges_judgerun WHERE id = %s", run_id)[0]
                return found if found in ("done", "failed", "cancelled") else None

            final = wait_for(status, 120, "the run to end after the restart", every=0.2)
            finished_after = time.monotonic() - restarted_at
            alive = worker.poll() is None
        finally:
            kill_group(worker)
        calls = len(llm.chat_requests)
    error, attempts = query(pg, "SELECT error, attempts FROM judges_judgerun WHERE id = %s", run_id)
    assert final == "done", error
    assert alive  # the same worker finished it: never restarted
    judged = query(pg, "SELECT count(*), count(DISTINCT trace_id) FROM judges_judgment WHERE run_id = %s", run_id)
    assert judged == (JUDGED, JUDGED)
    assert query(pg, "SELECT count(*) FROM judges_judgment WHERE run_id = %s AND error <> ''", run_id) == (0,)
    assert calls <= 1.05 * JUDGED, calls
    print(
        f"\npostgres restart during a judge run: down at call {calls_at_stop} for {outage_seconds:.1f} s; "
        f"run done {finished_after:.1f} s after the restart, {JUDGED} judgments, provider calls {calls} for "
        f"{JUDGED} traces, attempts {attempts}, worker not restarted"
    )
