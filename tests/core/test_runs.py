"""core.runs on real runs and real parts: claim races between two connections, takeovers of stale runs, ownership,
cancel, the heartbeat thread while the work blocks, time limits, and the resume registry with a real broker and
worker. Suggestion runs stand for every kind where the kind does not matter."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import before_task_publish, worker_ready
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone

from agents.models import GradingRun
from agents.services import grader_create
from annotation.models import ImportJob, Project, SuggestionRun
from core.runs import (
    claimable_runs,
    live_runs,
    run_cancel,
    run_claim,
    run_enqueue,
    run_fail,
    run_finish,
    run_heartbeat,
    run_kinds,
    run_retry_later,
    run_working,
    stale_window,
)
from judges.models import BiasRun, JudgeRun
from judges.services import judge_create
from suites.models import PairwiseComparison, SuiteRun
from tests.agents.helpers import DONE, make_trials
from tests.factories import make_criterion, make_label, make_note, make_trace
from tests.llm_server import Reply, ScriptedLLMServer

ROOT = Path(__file__).resolve().parent.parent.parent
TIME_LIMIT_MESSAGE = "took longer than {} s, the time limit of its worker task, and was stopped"


def queued_run(project: Project, user: User) -> SuggestionRun:
    return SuggestionRun.objects.create(project=project, created_by=user)


def another_delivery(run: SuggestionRun) -> SuggestionRun:
    """The same run as a second delivery of its task loads it: its own instance, holding no claim."""
    return SuggestionRun.objects.get(pk=run.pk)


def silence(run: SuggestionRun, seconds: float) -> None:
    """The run's worker wrote its last heartbeat `seconds` ago."""
    SuggestionRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# --- queueing ------------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_run_is_handed_to_its_kinds_task_only_once_its_row_is_committed(
    project, expert, monkeypatch, django_capture_on_commit_callbacks
):
    from annotation.tasks import suggestion_run_task

    sent: list[int] = []
    monkeypatch.setattr(suggestion_run_task, "delay", sent.append)  # the broker is not under test here
    with django_capture_on_commit_callbacks(execute=True):
        run = queued_run(project, expert)
        run_enqueue(run=run)
        assert sent == []  # still inside the transaction: the worker would not find the run
    assert sent == [run.pk]
    assert {kind.model._meta.label for kind in run_kinds()} >= {
        "annotation.ImportJob",
        "annotation.SuggestionRun",
        "judges.JudgeRun",
        "suites.SuiteRun",
        "agents.GradingRun",
    }


# --- claims --------------------------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_of_two_deliveries_racing_for_a_run_on_two_connections_exactly_one_claims_it(project, expert):
    runs = [queued_run(project, expert) for _ in range(10)]
    wins: dict[int, list[bool]] = {run.pk: [] for run in runs}

    def deliver(run_id: int, start: threading.Barrier) -> None:
        try:
            run = SuggestionRun.objects.get(pk=run_id)
            start.wait(timeout=10)
            wins[run_id].append(run_claim(run=run))
        finally:
            connection.close()

    for run in runs:
        start = threading.Barrier(2)
        threads = [threading.Thread(target=deliver, args=(run.pk, start)) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert all(sorted(results) == [False, True] for results in wins.values()), wins
    assert set(SuggestionRun.objects.values_list("status", "attempts")) == {("running", 1)}


@pytest.mark.django_db
def test_a_run_is_taken_over_once_its_heartbeat_is_stale_and_not_before(project, expert):
    first = queued_run(project, expert)
    assert run_claim(run=first) and first.status == "running" and first.claim_token is not None
    second = another_delivery(first)
    assert not run_claim(run=second)  # its worker is alive
    assert first in live_runs(SuggestionRun) and first not in claimable_runs(SuggestionRun)

    silence(first, stale_window().total_seconds() - 5)
    assert not run_claim(run=second)
    silence(first, stale_window().total_seconds() + 1)
    assert first in claimable_runs(SuggestionRun) and first not in live_runs(SuggestionRun)
    assert run_claim(run=second)
    assert (second.status, second.attempts) == ("running", 2)
    assert second.claim_token != first.claim_token
    assert second.started_at == SuggestionRun.objects.get(pk=first.pk).started_at  # started once, taken over since


@pytest.mark.django_db
def test_only_the_attempt_that_still_owns_a_run_may_beat_finish_or_fail_it(project, expert):
    lost = queued_run(project, expert)
    run_claim(run=lost)
    silence(lost, stale_window().total_seconds() + 1)
    taker = another_delivery(lost)
    assert run_claim(run=taker)

    assert not run_heartbeat(run=lost, progress=50)
    assert not run_finish(run=lost, stage="done")
    assert not run_fail(run=lost, error="the lost attempt's error")
    taker.refresh_from_db()
    assert (taker.status, taker.progress, taker.stage, taker.error) == ("running", 0, "", "")

    assert run_heartbeat(run=taker, progress=50)
    assert run_finish(run=taker, stage="done")
    assert not run_fail(run=taker, error="too late")  # ended: nobody ends it again
    taker.refresh_from_db()
    assert (taker.status, taker.progress, taker.stage, taker.error) == ("done", 50, "done", "")
    assert taker.finished_at is not None


@pytest.mark.django_db
def test_a_cancelled_run_is_never_claimed_and_its_attempt_cannot_end_it(project, expert):
    waiting = queued_run(project, expert)
    assert run_cancel(run=waiting) and waiting.status == "cancelled" and waiting.finished_at is not None
    assert not run_claim(run=another_delivery(waiting))

    running = queued_run(project, expert)
    run_claim(run=running)
    assert run_cancel(run=running)
    assert not run_heartbeat(run=running) and not run_finish(run=running)
    silence(running, stale_window().total_seconds() + 1)
    assert not run_claim(run=another_delivery(running))  # silent, but cancelled: not lost
    assert not run_cancel(run=running)  # already ended
    assert running not in claimable_runs(SuggestionRun) and running not in live_runs(SuggestionRun)


class RecordingTask:
    """Stands for a Celery task's `retry`, to read the countdown a delivery asks for."""

    def __init__(self) -> None:
        self.countdowns: list[float] = []

    def retry(self, *, countdown: float) -> Exception:
        self.countdowns.append(countdown)
        return RuntimeError("retry")


@pytest.mark.django_db
def test_a_delivery_that_finds_the_run_alive_retries_when_its_heartbeat_would_be_stale(project, expert):
    run = queued_run(project, expert)
    run_claim(run=run)
    silence(run, 10)
    other, task = another_delivery(run), RecordingTask()
    assert not run_claim(run=other)
    with pytest.raises(RuntimeError, match="retry"):
        run_retry_later(run=other, task=task)
    (countdown,) = task.countdowns
    expected = stale_window().total_seconds() - 10
    assert expected < countdown <= expected + 1  # not a fixed full window

    run_finish(run=run)
    other.refresh_from_db()
    run_retry_later(run=other, task=task)  # ended: nothing to wait for
    assert task.countdowns == [countdown]


# --- the heartbeat thread ------------------------------------------------------------------------------------------


def database_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="counts connections in pg_stat_activity")
def test_the_heartbeat_is_written_while_the_work_blocks_on_its_own_connection_closed_at_the_end(
    project, expert, settings
):
    settings.EVALSTUDIO_RUN_STALE_SECONDS = 0.6  # a beat every 0.1 s
    run = queued_run(project, expert)
    run_claim(run=run)
    claimed_beat = run.heartbeat_at
    before = database_connections()
    with run_working(run=run) as heartbeat:
        assert heartbeat is not None
        # The work blocks (a slow LLM call, a long clustering): beats keep coming all the same.
        for _ in range(3):
            heartbeat.beaten.clear()
            assert heartbeat.beaten.wait(timeout=5)
        beat = SuggestionRun.objects.get(pk=run.pk).heartbeat_at
        assert beat > claimed_beat
        assert database_connections() == before + 1
    assert not heartbeat.is_alive()
    wait_for(lambda: database_connections() == before, 5, "the heartbeat's connection to close")
    assert SuggestionRun.objects.get(pk=run.pk).status == "running"  # beating never ends a run


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_stops_once_the_run_is_no_longer_its_attempts(project, expert, settings):
    settings.EVALSTUDIO_RUN_STALE_SECONDS = 0.6
    run = queued_run(project, expert)
    run_claim(run=run)
    with run_working(run=run) as heartbeat:
        assert heartbeat.beaten.wait(timeout=5)
        run_cancel(run=another_delivery(run))
        heartbeat.join(timeout=5)
        assert not heartbeat.is_alive()
    assert SuggestionRun.objects.get(pk=run.pk).status == "cancelled"


@pytest.mark.django_db
def test_inside_an_outer_transaction_no_heartbeat_thread_is_started(project, expert):
    run = queued_run(project, expert)
    run_claim(run=run)
    with run_working(run=run) as heartbeat:
        assert heartbeat is None and connection.in_atomic_block
        assert not [t for t in threading.enumerate() if t.name.startswith("heartbeat of")]


# --- time limits ---------------------------------------------------------------------------------------------------


def clustering_that_raises(*_args: object, **_kwargs: object) -> None:
    raise SoftTimeLimitExceeded()


@pytest.mark.django_db
def test_a_soft_time_limit_in_the_work_ends_the_run_failed_saying_how_long_it_took(project, expert, monkeypatch):
    from annotation.tasks import suggestion_run_task

    monkeypatch.setattr("annotation.suggestions.cluster_notes", clustering_that_raises)
    run = queued_run(project, expert)
    assert suggestion_run_task(run.pk) == "failed"
    run.refresh_from_db()
    assert run.error == TIME_LIMIT_MESSAGE.format(suggestion_run_task.soft_time_limit)
    assert run.finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_a_soft_time_limit_in_a_judge_chunk_ends_the_judge_run_failed_saying_how_long_it_took(
    project, monkeypatch, settings
):
    from judges.tasks import judge_run_chunk_task, judge_run_task

    settings.EVALSTUDIO_RUN_STALE_SECONDS = 0.6  # the heartbeat thread runs: the failure goes through it
    criterion = make_criterion(project=project, name="polite")
    for i in range(3):
        make_label(trace=make_trace(project=project, external_id=f"t-{i}"), criterion=criterion)
    judge = judge_create(project=project, criterion=criterion, name="rude", kind="assertion", config=DONE)
    run = JudgeRun.objects.create(version=judge.latest_version(), split="all", total=3)
    queued: list[tuple] = []
    monkeypatch.setattr(judge_run_chunk_task, "delay", lambda *args: queued.append(args))
    assert judge_run_task(run.pk) == 1
    monkeypatch.setattr("judges.services._run_scorer", lambda _run: clustering_that_raises)
    with pytest.raises(SoftTimeLimitExceeded):
        judge_run_chunk_task(*queued[0])
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", TIME_LIMIT_MESSAGE.format(judge_run_chunk_task.soft_time_limit))


@pytest.mark.django_db(transaction=True)
def test_in_a_pool_without_time_limits_the_heartbeat_ends_an_overrunning_run(project, expert, monkeypatch, settings):
    """The threads and solo pools never raise SoftTimeLimitExceeded: the heartbeat thread ends the run instead."""
    from annotation import suggestions
    from annotation.tasks import suggestion_run_task

    settings.EVALSTUDIO_RUN_STALE_SECONDS = 0.6
    monkeypatch.setattr(suggestion_run_task, "soft_time_limit", 0.5)
    real_clustering = suggestions.cluster_notes

    def clustering_that_overruns(*args: object, **kwargs: object) -> object:
        wait_for(lambda: SuggestionRun.objects.get(pk=run.pk).status != "running", 10, "the time limit")
        return real_clustering(*args, **kwargs)

    monkeypatch.setattr(suggestions, "cluster_notes", clustering_that_overruns)
    for text in ("Wrong date", "Wrong date!"):
        make_note(trace=make_trace(project=project), author=expert, text=text)
    run = queued_run(project, expert)
    assert suggestion_run_task(run.pk) == "failed"
    run.refresh_from_db()
    assert run.error == TIME_LIMIT_MESSAGE.format(0.5)
    assert not run.suggestions.exists()  # the overrunning attempt no longer owned the run when it finished


# --- resuming when a worker starts ---------------------------------------------------------------------------------


@pytest.fixture
def published() -> Iterator[list[dict]]:
    """The task messages sent to the real broker during the test (task, run id, eta); the queue is purged after."""
    from evalstudio.celery import app

    sent: list[dict] = []

    def record(sender: str, headers: dict, body: tuple, **_kwargs: object) -> None:
        sent.append({"task": sender, "run_id": body[0][0], "eta": headers.get("eta")})

    before_task_publish.connect(record, weak=False)
    try:
        yield sent
    finally:
        before_task_publish.disconnect(record)
        app.control.purge()


def one_run_of_each_kind(project: Project, expert: User, **fields: object) -> dict[str, int]:
    criterion = make_criterion(project=project)
    judge = judge_create(project=project, criterion=criterion, name=criterion.name, kind="assertion", config=DONE)
    grader = grader_create(project=project, name=criterion.name, target="final_output", config=DONE)
    runs = [
        ImportJob.objects.create(project=project, user=expert, file_name="f.jsonl", file_path="/gone", **fields),
        SuggestionRun.objects.create(project=project, created_by=expert, **fields),
        JudgeRun.objects.create(version=judge.latest_version(), split="all", **fields),
        SuiteRun.objects.create(project=project, golden_version=1, **fields),
        GradingRun.objects.create(grader=grader, **fields),
        # Rows written directly: a battery's kind is not checked here, only that its run is resumed like the others.
        BiasRun.objects.create(version=judge.latest_version(), **fields),
    ]
    suite = runs[3]
    runs.append(
        PairwiseComparison.objects.create(
            project=project,
            baseline=suite,
            candidate=suite,
            criterion=criterion,
            judge_version=judge.latest_version(),
            **fields,
        )
    )
    return {run._meta.label: run.pk for run in runs}


@pytest.mark.django_db
def test_a_starting_worker_queues_waiting_and_lost_runs_of_every_kind_and_live_ones_for_later(
    project, expert, published
):
    from evalstudio.celery import app

    app.loader.import_default_modules()  # as a starting worker does: each app's tasks module registers its kind
    assert {kind.model for kind in run_kinds()} == {
        ImportJob,
        SuggestionRun,
        JudgeRun,
        SuiteRun,
        GradingRun,
        PairwiseComparison,
        BiasRun,
    }
    now = timezone.now()
    long_ago = now - stale_window() - timedelta(seconds=1)
    waiting = one_run_of_each_kind(project, expert)
    lost = one_run_of_each_kind(project, expert, status="running", heartbeat_at=long_ago)
    beating = one_run_of_each_kind(project, expert, status="running", heartbeat_at=now)
    one_run_of_each_kind(project, expert, status="done", heartbeat_at=long_ago)
    one_run_of_each_kind(project, expert, status="cancelled")

    worker_ready.send(sender=None)  # what a worker sends once it is up

    tasks = {kind.model._meta.label: kind.task.name for kind in run_kinds()}
    sent_now = {(m["task"], m["run_id"]) for m in published if m["eta"] is None}
    sent_later = {(m["task"], m["run_id"]): m["eta"] for m in published if m["eta"] is not None}
    assert sent_now == {(tasks[label], pk) for runs in (waiting, lost) for label, pk in runs.items()}
    assert set(sent_later) == {(tasks[label], pk) for label, pk in beating.items()}
    window = stale_window().total_seconds()
    for eta in sent_later.values():
        # Due when the heartbeat goes stale (plus the retry margin): the eta counts from the publish, which a busy
        # machine may make a few seconds after `now`; a second window would be 60 s more.
        assert window <= (datetime.fromisoformat(eta) - now).total_seconds() <= window + 10


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_run_whose_worker_died_is_taken_over_by_a_fresh_worker_within_the_window(project, settings, celery_worker):
    settings.EVALSTUDIO_RUN_STALE_SECONDS = 2
    make_trials(project=project, outcomes={f"task-{i}": [True, False] for i in range(20)})
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    run = GradingRun.objects.create(grader=grader)
    assert run_claim(run=run)  # a worker claimed it and died at once: its heartbeat is fresh, then silent
    # The window runs from the heartbeat the claim wrote, which comes before this line by however long the machine
    # took to get here: measured from here, a correct takeover could look early.
    last_beat = run.heartbeat_at
    died_at = time.monotonic()
    worker_ready.send(sender=None)  # the fresh worker is up (a real one sends this; the test worker does not)
    wait_for(lambda: GradingRun.objects.get(pk=run.pk).attempts == 2, 30, "the fresh worker to take the run over")
    silent_for = (timezone.now() - last_beat).total_seconds()
    wait_for(lambda: GradingRun.objects.get(pk=run.pk).is_finished, 30, "the fresh worker to finish the run")
    taken_over_after = time.monotonic() - died_at
    run.refresh_from_db()
    assert (run.status, run.attempts, run.graded) == ("done", 2, 40)
    assert silent_for >= 2, silent_for  # never taken over while the heartbeat was fresh
    assert taken_over_after < 2 + 5, taken_over_after  # the window, not 600 s


# --- a real worker with a real soft time limit ---------------------------------------------------------------------


def start_prefork_worker(llm_url: str) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}",
        "OPENAI_BASE_URL": llm_url,
        "OPENAI_API_KEY": "test",
        "EVALSTUDIO_RUN_STALE_SECONDS": "3",
    }
    command = [sys.executable, "-m", "celery", "-A", "evalstudio", "worker", "--pool", "prefork", "--concurrency", "1"]
    return subprocess.Popen(
        [*command, "--loglevel", "WARNING", "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs a broker two processes share (REDIS_URL)")
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the worker process needs the test database by URL")
def test_a_run_that_outlasts_its_soft_time_limit_on_a_prefork_worker_ends_failed_saying_so(project, expert, settings):
    from annotation.tasks import suggestion_run_task

    for text in ("Wrong date for the launch", "wrong date for the launch!"):
        make_note(trace=make_trace(project=project), author=expert, text=text)
    with ScriptedLLMServer() as llm:
        # Naming the group hangs far past the limit (and the client retries once, so the wait is not cut short).
        llm.respond_with(lambda _request: Reply(content=json.dumps({"name": "x", "definition": "y"}), delay=8))
        settings.OPENAI_BASE_URL = llm.base_url
        params = {"seed": 0, "distance_threshold": 0.85, "target_groups": None, "min_group_size": 2, "use_llm": True}
        run = SuggestionRun.objects.create(project=project, created_by=expert, params=params)
        worker = start_prefork_worker(llm.base_url)
        try:
            suggestion_run_task.apply_async((run.pk,), soft_time_limit=1, time_limit=6)
            wait_for(lambda: SuggestionRun.objects.get(pk=run.pk).is_finished, 30, "the run to end")
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(timeout=30)
    run.refresh_from_db()
    assert (run.status, run.error) == ("failed", TIME_LIMIT_MESSAGE.format(1))
    assert not run.suggestions.exists()
