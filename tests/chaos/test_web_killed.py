"""Chaos: gunicorn (master and both workers) is SIGKILLed mid-stream while a client sends 100,000 traces in batches
and retries every batch it did not see acknowledged. Every acknowledged trace is stored exactly once, the stream
ends with exactly 100,000 traces, and sending the whole stream again adds nothing: a batch is one transaction, and
a trace's id is its idempotency key."""

from __future__ import annotations

import random
import tempfile
import threading
import time
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Count

from annotation.models import Trace
from annotation.services import api_token_create
from tests.chaos.processes import SCRATCH, BatchClient, Gunicorn, base_env, database_url, wait_for

TRACES = 100_000
BATCH = 500
SEED = 20261204

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="gunicorn needs the test database by URL"),
]


def stream(start: int = 0) -> list[list[dict[str, str]]]:
    ids = range(start, TRACES)
    traces = [{"id": f"w-{i:06d}", "output": f"ok {i}"} for i in ids]
    return [traces[at : at + BATCH] for at in range(0, len(traces), BATCH)]


def test_every_acknowledged_trace_is_stored_once_when_gunicorn_is_killed_mid_stream(project):
    _, token = api_token_create(project=project, name="chaos")
    SCRATCH.mkdir(parents=True, exist_ok=True)
    log = Path(tempfile.mkdtemp(prefix="web-kill-", dir=SCRATCH)) / "gunicorn.log"
    web = Gunicorn(base_env(DATABASE_URL=database_url(connection.settings_dict)), log=log, workers=2).start()
    master_pid = web.process.pid
    batches = stream()
    rng = random.Random(SEED)
    kill_batch = rng.randrange(len(batches) // 4, 3 * len(batches) // 4)
    kill_fraction = rng.random()  # how far into that batch's expected time the kill lands
    sending = threading.Event()
    killed: dict[str, float] = {}
    batch_seconds: list[float] = []

    def supervisor() -> None:
        """SIGKILL the whole process group while batch `kill_batch` is in flight, then start a new gunicorn, as a
        container's restart policy would."""
        sending.wait(timeout=300)
        typical = sorted(batch_seconds)[len(batch_seconds) // 2] if batch_seconds else 0.05
        threading.Event().wait(kill_fraction * typical)  # a seeded moment inside the request, not a poll
        killed["at"] = time.monotonic()
        web.kill()
        web.start()
        killed["back_after"] = time.monotonic() - killed["at"]

    client = BatchClient(port=lambda: web.port, slug=project.slug, token=token)
    # The client's only recovery: wait until the server answers again, then send the batch again.
    recover = lambda: wait_for(lambda: web.alive and "back_after" in killed, 60, "gunicorn to be back")  # noqa: E731
    killer = threading.Thread(target=supervisor, daemon=True)
    killer.start()
    started = time.monotonic()
    try:
        for number, batch in enumerate(batches):
            if number == kill_batch:
                sending.set()
            began = time.monotonic()
            client.send(batch, recover=recover)
            batch_seconds.append(time.monotonic() - began)
        first_pass = time.monotonic() - started
        # The baseline, from the same run: a batch's time before the kill.
        undisturbed = sorted(batch_seconds[:kill_batch])[kill_batch // 2]
        killer.join(timeout=60)
        first = client.stats
        stored = Trace.objects.filter(project=project)
        assert web.starts == 2 and web.process.pid != master_pid  # the kill happened, and a new gunicorn served
        assert first.acknowledged == len(batches) and first.acknowledged_ids == {t["id"] for b in batches for t in b}
        assert stored.count() == TRACES
        assert not stored.values("external_id").annotate(n=Count("id")).filter(n__gt=1).exists()
        # A batch stored just before the kill but never acknowledged comes back as duplicates: never twice.
        assert first.accepted + first.duplicates == TRACES
        assert first.retried >= 1 and first.connection_errors >= 1

        again = BatchClient(port=lambda: web.port, slug=project.slug, token=token)
        resend_started = time.monotonic()
        for batch in batches:
            again.send(batch, recover=recover)
        resend = time.monotonic() - resend_started
    finally:
        web.kill()
    assert (again.stats.accepted, again.stats.duplicates) == (0, TRACES)
    assert Trace.objects.filter(project=project).count() == TRACES
    print(
        f"\nweb kill: SIGKILL during batch {kill_batch + 1}/{len(batches)}, gunicorn back after "
        f"{killed['back_after']:.1f} s; batches acknowledged {first.acknowledged}, retried {first.retried} "
        f"(connection errors {first.connection_errors}, 5xx {len(first.server_errors)}, 429 {first.throttled}); "
        f"stored without an answer then found as duplicates: {first.duplicates}; "
        f"{TRACES:,} traces in {first_pass:.1f} s ({TRACES / first_pass:,.0f}/s; undisturbed batches "
        f"{undisturbed * 1000:.0f} ms median = {BATCH / undisturbed:,.0f}/s), whole stream re-sent in "
        f"{resend:.1f} s, 0 added"
    )
