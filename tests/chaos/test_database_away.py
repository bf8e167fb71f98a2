"""The pieces of core.runs that keep a run alive when the database drops its connections, each on its own and fast:
the heartbeat thread replaces a connection the server terminated, and a chunk task that lost the database is
retried by the broker instead of dropped. (test_postgres_restart.py restarts a whole cluster under real processes.)"""

from __future__ import annotations

import pytest
from celery.exceptions import Retry
from django.db import OperationalError, connection

from annotation.models import SuggestionRun
from core.runs import DATABASE_RETRY_MAX_SECONDS, Heartbeat, retry_when_database_away, run_claim
from judges.tasks import judge_run_chunk_task
from tests.chaos.processes import STALE_SECONDS, wait_for

pytestmark = [
    pytest.mark.chaos,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="terminates PostgreSQL backends"),
]


def terminate_other_connections() -> int:
    """What a PostgreSQL restart does to every session but this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_the_heartbeat_thread_replaces_a_connection_the_server_terminated(project, expert, settings):
    settings.EVALSTUDIO_RUN_STALE_SECONDS = STALE_SECONDS  # a beat every half second
    run = SuggestionRun.objects.create(project=project, created_by=expert)
    assert run_claim(run=run)
    heartbeat = Heartbeat(run, limit=None)
    heartbeat.start()
    try:
        wait_for(heartbeat.beaten.is_set, 5, "the first beat")
        assert terminate_other_connections() >= 1  # the thread's own connection among them
        heartbeat.beaten.clear()
        # One beat fails on the dead connection; the next one, on a new connection, is written.
        wait_for(heartbeat.beaten.is_set, 4 * heartbeat.interval + 2, "a beat after the connection was terminated")
        beat_at = SuggestionRun.objects.get(pk=run.pk).heartbeat_at
        heartbeat.beaten.clear()
        wait_for(heartbeat.beaten.is_set, 2 * heartbeat.interval + 2, "the beat after")
        assert SuggestionRun.objects.get(pk=run.pk).heartbeat_at > beat_at
    finally:
        heartbeat.stop()
    assert heartbeat.is_alive() is False


def test_a_task_that_lost_the_database_is_retried_with_backoff_not_dropped():
    class Request:
        retries = 3
        called_directly = False

    sent: list[dict] = []

    class Task:
        name = "some.task"
        request = Request()

        def retry(self, **options):
            sent.append(options)
            return Retry("again", when=options["countdown"])

    with pytest.raises(Retry), retry_when_database_away(Task()):
        raise OperationalError("terminating connection due to administrator command")
    assert sent[0]["countdown"] == 8 and sent[0]["max_retries"] > 0
    Request.retries = 20
    with pytest.raises(Retry), retry_when_database_away(Task()):
        raise OperationalError("connection refused")
    assert sent[1]["countdown"] == DATABASE_RETRY_MAX_SECONDS
    with pytest.raises(ValueError), retry_when_database_away(Task()):
        raise ValueError("a bug is not retried")
    assert len(sent) == 2
    assert judge_run_chunk_task.max_retries is not None  # retries are bounded per exception by the guard
