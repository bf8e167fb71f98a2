"""The worker-run lifecycle: import jobs, suggestion runs, judge runs, suite runs and grading runs are `WorkerRun`s.

A run is created QUEUED and handed to its Celery task after commit (`run_enqueue`; `run_task` declares a kind's
task and registers it). A delivery of the task claims it (`run_claim`,
a conditional UPDATE: of two deliveries only one wins) and it is RUNNING; its work ends it DONE or FAILED
(`run_finish`, `run_fail`), or a user ends it CANCELLED (`run_cancel`), after which nothing claims it again.

Ownership. Each claim writes a new `claim_token`, and heartbeat, finish and fail are conditional on it: only the
attempt that still owns a run may end it. An attempt whose worker was merely slow, and whose run was taken over
meanwhile, writes nothing over the new attempt's work.

Staleness. While a run's work executes, `run_working` keeps a thread writing its heartbeat every sixth of
EVALSTUDIO_RUN_STALE_SECONDS, whatever the work is doing (a slow LLM call, a long clustering). A RUNNING run whose
heartbeat is older than that window lost its worker: the next delivery claims it again (a takeover) and the kind
picks up what is left. A delivery that finds the run RUNNING with a fresh heartbeat does not give up: it retries
when that heartbeat would go stale (`run_retry_later`). When a worker starts, every unfinished run of every
registered kind is queued again (`runs_resume`), so a worker that starts right after another
died takes its runs over within about one window.

Time limits. Every task has Celery's `soft_time_limit`; the soft limit raising inside `run_working` ends the run
FAILED saying how long it took. Pools that do not enforce time limits (threads, solo) get the same from the
heartbeat thread, which fails the run once the limit has passed: a run is never left RUNNING forever.

The database going away. A run's tasks that lose the database (OperationalError, InterfaceError: the server restarted,
failed over, or dropped the connection) neither fail the run nor vanish: the delivery is retried, with backoff, until
the database answers again (`retry_when_database_away`, around every `run_task` and a kind's own chunk tasks), and
the work goes on where it stopped. The heartbeat thread replaces a connection that died instead of skipping beats
on it for ever.

Plumbing only: this module imports Django, Celery and the standard library, never an app.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar

from celery import Task, current_task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_ready
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, connections, models, transaction
from django.db.models import F, Q, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

logger = logging.getLogger(__name__)

# Heartbeats per staleness window: a run counts as lost only after several missed beats, so one slow UPDATE (a busy
# database) never makes a live run look dead.
BEATS_PER_WINDOW = 6
# How long the heartbeat thread waits for a row lock (or a busy SQLite file) before it skips a beat: stopping the
# thread never hangs on a lock that the work itself holds in a transaction.
BEAT_LOCK_WAIT_SECONDS = 2
# A retried delivery comes back this long after the heartbeat it saw would be stale, so that a beat written at the
# very edge of the window is not mistaken for silence and a delivery never spins on countdowns of zero.
RETRY_MARGIN_SECONDS = 0.5

# A task that lost the database (a restart, a failover, a network cut) is retried after 1, 2, 4, … s, at most this
# long apart and this many times: about ten minutes, longer than a restart or a failover takes.
DATABASE_RETRY_MAX_SECONDS = 30
DATABASE_RETRIES = 25

R = TypeVar("R", bound="WorkerRun")


class WorkerRun(models.Model):
    """A piece of background work done by a Celery worker, with a status that a page polls."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"

    FINISHED = frozenset({Status.DONE, Status.FAILED, Status.CANCELLED})

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    # Written every few seconds while a worker works on the run; a RUNNING run whose heartbeat is stale lost it.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The attempt that owns the run, written by each claim: only that attempt may beat, finish or fail it.
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    # How often the run was claimed: more than once when its worker died and another worker took it over.
    attempts = models.PositiveIntegerField(default=0, editable=False)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED


# Read back after each lifecycle write. Not the claim token: an instance is its attempt, and only that attempt's own
# successful claim changes which attempt it is (reading back a token after a failed write would adopt the owner's).
_LIFECYCLE_FIELDS = ["status", "error", "started_at", "heartbeat_at", "finished_at", "attempts"]


# --- which runs ----------------------------------------------------------------------------------------------------


def stale_window() -> timedelta:
    """How long a RUNNING run may stay silent before it counts as lost (EVALSTUDIO_RUN_STALE_SECONDS)."""
    return timedelta(seconds=settings.EVALSTUDIO_RUN_STALE_SECONDS)


def _silent_since(moment: datetime) -> Q:
    # The last sign of life is the heartbeat, else the start, else the creation (a row written RUNNING directly).
    return (
        Q(heartbeat_at__lt=moment)
        | Q(heartbeat_at=None, started_at__lt=moment)
        | Q(heartbeat_at=None, started_at=None, created_at__lt=moment)
    )


def _heard_since(moment: datetime) -> Q:
    return (
        Q(heartbeat_at__gte=moment)
        | Q(heartbeat_at=None, started_at__gte=moment)
        | Q(heartbeat_at=None, started_at=None, created_at__gte=moment)
    )


def claimable_runs(model: type[R], *, now: datetime | None = None) -> QuerySet[R]:
    """Runs a delivery may claim: queued ones, and running ones silent for longer than the window (lost)."""
    edge = (now or timezone.now()) - stale_window()
    return model.objects.filter(
        Q(status=WorkerRun.Status.QUEUED) | (Q(status=WorkerRun.Status.RUNNING) & _silent_since(edge))
    )


def live_runs(model: type[R], *, now: datetime | None = None) -> QuerySet[R]:
    """Runs that will end without help: queued ones, and running ones whose worker is alive (a fresh heartbeat)."""
    edge = (now or timezone.now()) - stale_window()
    return model.objects.filter(
        Q(status=WorkerRun.Status.QUEUED) | (Q(status=WorkerRun.Status.RUNNING) & _heard_since(edge))
    )


def _seconds_until_stale(run: WorkerRun, *, now: datetime | None = None) -> float | None:
    """For a RUNNING run, how long until its last sign of life is older than the window (0: already); else None."""
    if run.status != WorkerRun.Status.RUNNING:
        return None
    last = run.heartbeat_at or run.started_at or run.created_at
    return max(0.0, (last + stale_window() - (now or timezone.now())).total_seconds())


# --- one run's lifecycle -------------------------------------------------------------------------------------------


def _refresh(run: WorkerRun) -> None:
    try:
        run.refresh_from_db(fields=_LIFECYCLE_FIELDS)
    except type(run).DoesNotExist:
        pass  # deleted meanwhile; the caller's next conditional write finds nothing


def _owned(run: WorkerRun) -> QuerySet[Any]:
    # `claim_token=None` matches IS NULL: a row written RUNNING directly (an import of verdicts, a test) is owned by
    # whoever holds it, until a claim gives it a token.
    return type(run).objects.filter(pk=run.pk, status=WorkerRun.Status.RUNNING, claim_token=run.claim_token)


def run_claim(*, run: WorkerRun) -> bool:
    """Claim the run for this attempt: a conditional UPDATE of a queued run, or of a running one whose heartbeat is
    stale (its worker died), to RUNNING under a new claim token. True for the one delivery that wins.

    The instance's lifecycle fields are read back either way, so the caller sees the run's state (`run_retry_later`).
    A cancelled or finished run is never claimed.
    """
    now = timezone.now()
    token = uuid.uuid4()
    claimed = (
        claimable_runs(type(run), now=now)
        .filter(pk=run.pk)
        .update(
            status=WorkerRun.Status.RUNNING,
            claim_token=token,
            attempts=F("attempts") + 1,
            started_at=Coalesce("started_at", Value(now)),
            heartbeat_at=now,
            error="",
        )
    )
    if claimed:
        run.claim_token = token
    _refresh(run)
    return claimed == 1


def run_heartbeat(*, run: WorkerRun, **fields: Any) -> bool:
    """Write the run's heartbeat, and any progress `fields`, if this attempt still owns it. False when it does not:
    the run was cancelled, ended, or taken over after its heartbeat went stale."""
    return _owned(run).update(heartbeat_at=timezone.now(), **fields) == 1


def run_finish(*, run: WorkerRun, **fields: Any) -> bool:
    """End the run DONE, writing `fields` (its result) with it, if this attempt still owns it."""
    now = timezone.now()
    finished = _owned(run).update(status=WorkerRun.Status.DONE, finished_at=now, heartbeat_at=now, **fields) == 1
    _refresh(run)
    return finished


def run_fail(*, run: WorkerRun, error: str | BaseException, **fields: Any) -> bool:
    """End the run FAILED with `error` (a message, or the exception that stopped the work: see `failure_message`),
    if this attempt still owns it; a takeover's work is never overwritten by the attempt it replaced."""
    message = error if isinstance(error, str) else failure_message(error)
    failed = (
        _owned(run).update(status=WorkerRun.Status.FAILED, error=message, finished_at=timezone.now(), **fields) == 1
    )
    _refresh(run)
    return failed


def run_cancel(*, run: WorkerRun) -> bool:
    """Stop a queued or running run, whoever works on it: nothing claims it again and its work's conditional writes
    (heartbeat, finish, fail) find it no longer theirs. False when it had already ended."""
    cancelled = (
        type(run)
        .objects.filter(pk=run.pk, status__in=[WorkerRun.Status.QUEUED, WorkerRun.Status.RUNNING])
        .update(status=WorkerRun.Status.CANCELLED, finished_at=timezone.now())
    )
    _refresh(run)
    return cancelled == 1


def run_retry_later(*, run: WorkerRun, task: Task) -> None:
    """For a delivery of `task` that did not claim the run (as last read): while another attempt holds it (RUNNING,
    a fresh heartbeat), raise the task's Retry, due when that heartbeat would be stale. If that attempt's worker
    died a moment ago, the retry takes the run over within about one window instead of never; if it is alive, the
    retry finds it fresh again or finished. Returns when the run has ended or is gone: nothing left to do."""
    wait = _seconds_until_stale(run)
    if wait is not None:
        raise task.retry(countdown=wait + RETRY_MARGIN_SECONDS)


def run_take(*, run: WorkerRun, task: Task) -> bool:
    """Claim the run for this delivery of `task`: True when it is this delivery's to work on; while another attempt
    holds it, the task's Retry is raised (run_retry_later); False when the run has ended (nothing left to do)."""
    if run_claim(run=run):
        return True
    run_retry_later(run=run, task=task)
    return False


# --- time limits ---------------------------------------------------------------------------------------------------


def _soft_time_limit() -> float | None:
    """The soft time limit of the Celery task running in this thread (None outside a task)."""
    task = current_task
    if not task:
        return None
    limits = task.request.timelimit or (None, None)
    return (limits[1] if len(limits) > 1 else None) or task.soft_time_limit or None


def _time_limit_message(limit: float | None) -> str:
    if limit is None:
        return "took longer than the time limit of its worker task and was stopped"
    return f"took longer than {limit:g} s, the time limit of its worker task, and was stopped"


def failure_message(exc: BaseException) -> str:
    """What a run says about the exception that stopped its work: a time limit in words, never a traceback;
    anything else as `Type: message`."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return _time_limit_message(_soft_time_limit())
    return f"{type(exc).__name__}: {exc}"


# --- the database going away ---------------------------------------------------------------------------------------


def database_away(exc: BaseException) -> bool:
    """Whether `exc` says the database could not be reached or dropped the connection (a restart, a failover, a lost
    network) or gave up on a lock, rather than that the work is wrong: the work is sound and can be retried."""
    return isinstance(exc, OperationalError | InterfaceError)


def close_lost_connections() -> None:
    """Close this thread's database connections that no longer answer, so the next query opens a new one: Django
    reconnects only a connection that was closed. One inside a transaction is left to the code that opened it."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is not None and not conn.in_atomic_block and not conn.is_usable():
            conn.close()


@contextmanager
def retry_when_database_away(task: Task) -> Iterator[None]:
    """Around a task's work: when the database went away, retry the delivery after a backoff (1 s, doubling, at most
    DATABASE_RETRY_MAX_SECONDS, DATABASE_RETRIES times) on a fresh connection, instead of dropping it. The work must be
    safe to repeat, as every run's work is (conditional claims, unique results)."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        close_lost_connections()
        countdown = min(2 ** min(task.request.retries, 10), DATABASE_RETRY_MAX_SECONDS)
        logger.warning("%s lost the database (%s); retrying in %s s", task.name, exc, countdown)
        raise task.retry(exc=exc, countdown=countdown, max_retries=DATABASE_RETRIES) from exc


# --- the heartbeat while the work executes -------------------------------------------------------------------------


class Heartbeat(threading.Thread):
    """Writes one run's heartbeat every window/6 seconds on its own database connection, until stopped, the run is
    no longer its attempt's, or the task's time limit has passed (then it ends the run FAILED saying so)."""

    def __init__(self, run: WorkerRun, *, limit: float | None) -> None:
        super().__init__(name=f"heartbeat of {run._meta.label} {run.pk}", daemon=True)
        self.model, self.pk, self.claim_token = type(run), run.pk, run.claim_token
        self.interval = settings.EVALSTUDIO_RUN_STALE_SECONDS / BEATS_PER_WINDOW
        self.limit = limit
        # Somewhat after the soft limit: in a prefork pool the limit raises in the work first, with the same message.
        self.deadline = None if limit is None else time.monotonic() + limit + self.interval
        self.stopping = threading.Event()
        self.beaten = threading.Event()  # set after each heartbeat written
        self.fail_with: str | None = None
        self.connected = False

    def stop(self, *, fail_with: str | None = None) -> None:
        """Stop beating (ending the run FAILED with `fail_with` first, when given) and wait for the thread, which
        gives up a beat after BEAT_LOCK_WAIT_SECONDS: this never hangs."""
        self.fail_with = fail_with
        self.stopping.set()
        self.join(timeout=2 * BEAT_LOCK_WAIT_SECONDS + 1)

    def run(self) -> None:
        try:
            while not self.stopping.wait(self.interval):
                if self.deadline is not None and time.monotonic() >= self.deadline:
                    # A pool without time limits (threads, solo) never raises SoftTimeLimitExceeded in the work.
                    self._write(status=WorkerRun.Status.FAILED, error=_time_limit_message(self.limit), finished=True)
                    return
                written = self._write()
                if written == 0:
                    return  # ended, cancelled or taken over: nothing left to keep alive
                if written:  # not a skipped beat (None): the run's heartbeat really moved
                    self.beaten.set()
            if self.fail_with is not None:
                self._write(status=WorkerRun.Status.FAILED, error=self.fail_with, finished=True)
        finally:
            connection.close()  # this thread's own connection

    def _connect(self) -> None:
        # On the first write only: work that ends within one interval costs no connection at all.
        self.connected = True
        try:
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{BEAT_LOCK_WAIT_SECONDS}s"])
                elif connection.vendor == "sqlite":
                    cursor.execute(f"PRAGMA busy_timeout = {BEAT_LOCK_WAIT_SECONDS * 1000}")
        except DatabaseError:
            logger.warning("Could not bound the heartbeat's lock waits", exc_info=True)

    def _write(self, *, finished: bool = False, **fields: Any) -> int | None:
        """The conditional UPDATE of a beat (or of the end); None when the database did not answer in time."""
        if not self.connected:
            self._connect()
        now = timezone.now()
        if finished:
            fields["finished_at"] = now
        else:
            fields["heartbeat_at"] = now
        owned = self.model.objects.filter(pk=self.pk, status=WorkerRun.Status.RUNNING, claim_token=self.claim_token)
        try:
            return owned.update(**fields)
        except DatabaseError as exc:
            # A lock held by the work's own transaction, a busy SQLite file: skip this beat, the next one comes.
            logger.warning("Heartbeat of %s %s skipped: %s", self.model._meta.label, self.pk, exc)
            if not connection.is_usable():
                # The database restarted or dropped the connection: without this, every later beat would fail on the
                # dead connection, the run would look lost although its worker is alive, and be taken over.
                connection.close()
                self.connected = False
            return None


@contextmanager
def run_working(*, run: WorkerRun) -> Iterator[Heartbeat | None]:
    """Keep the run's heartbeat while the block does its work; end the run FAILED, saying how long it took, when the
    task's soft time limit stops the work (the exception is raised on).

    The heartbeat is written by a daemon thread on its own database connection, closed when the block ends. Inside an
    outer transaction (tests, an inline run called in `transaction.atomic`) no thread is started: a second connection
    would wait on the row locks that transaction holds, or not see the run at all. Yields the thread, or None.
    """
    limit = _soft_time_limit()
    heartbeat = None if connection.in_atomic_block else Heartbeat(run, limit=limit)
    if heartbeat is not None:
        heartbeat.start()
    try:
        yield heartbeat
    except SoftTimeLimitExceeded:
        if heartbeat is not None:
            # Its own connection is sound; this thread's may have been interrupted in the middle of a query.
            heartbeat.stop(fail_with=_time_limit_message(limit))
            heartbeat = None
        else:
            run_fail(run=run, error=_time_limit_message(limit))
        raise
    finally:
        if heartbeat is not None:
            heartbeat.stop()


# --- when a worker starts ------------------------------------------------------------------------------------------


def resume_when_a_worker_starts(what: str, resume: Callable[[], object]) -> None:
    """Run `resume` (which queues again the work of `what` that is waiting or lost its worker, returning what it
    queued) each time a worker starts. The filesystem broker of `make run` has no redelivery, and Redis redelivers
    only after its visibility timeout, so a worker start is where lost work comes back. A failure is logged: a worker
    must start even when the database is briefly away."""

    def on_start(**_kwargs: object) -> None:
        try:
            queued = resume()
        except Exception:
            logger.exception("Could not look for %s to resume", what)
            return
        if queued:
            logger.info("Resumed %s %s", what, queued)

    worker_ready.connect(on_start, weak=False)


@dataclass(frozen=True)
class RunKind:
    model: type[WorkerRun]
    task: Task  # takes the run's id


_RUN_KINDS: dict[str, RunKind] = {}


def run_kind_register(*, model: type[WorkerRun], task: Task) -> None:
    """Queue the unfinished runs of `model` again through `task` (which takes a run's id) when a worker starts."""
    _RUN_KINDS[model._meta.label] = RunKind(model=model, task=task)


def run_task(*, model: type[WorkerRun], soft_time_limit: int, time_limit: int) -> Callable[[Callable[..., Any]], Task]:
    """Declares the Celery task that works one kind of run, taking the run's id: bound (for run_retry_later), retried
    without limit while another attempt holds the run and with backoff while the database is away
    (retry_when_database_away), within its time limits (both under the broker's visibility timeout), and registered so
    that run_enqueue queues it and a starting worker resumes its runs."""

    def declare(work: Callable[..., Any]) -> Task:
        @wraps(work)
        def guarded(self: Task, *args: Any, **kwargs: Any) -> Any:
            with retry_when_database_away(self):
                return work(self, *args, **kwargs)

        task = shared_task(bind=True, max_retries=None, soft_time_limit=soft_time_limit, time_limit=time_limit)(guarded)
        run_kind_register(model=model, task=task)
        return task

    return declare


def run_kinds() -> list[RunKind]:
    return list(_RUN_KINDS.values())


def run_enqueue(*, run: WorkerRun) -> None:
    """Hand the run to its kind's task once the current transaction commits: the worker must never look for a run
    that is not stored yet (outside a transaction it is sent at once). Apps register their kinds when they are
    ready, so a service queues its runs without importing the tasks that import it.

    A broker that is down does not fail the request, nor hold it: the publish is tried once (CELERY_TASK_PUBLISH_RETRY
    and the broker's transport options in settings keep it from retrying) and the run, stored QUEUED, is queued
    again by `runs_resume` when a worker starts or reconnects (core/worker_steps.py). `run_waits_for_worker(run)`
    then says so, for the page to tell the user."""
    task = _RUN_KINDS[run._meta.label].task

    def send() -> None:
        try:
            task.delay(run.pk)
        except Exception as exc:  # noqa: BLE001 - a broker that is down or unreachable, whatever the transport raises
            run._waits_for_worker = True  # type: ignore[attr-defined]
            logger.warning(
                "%s %s was not queued (%s: %s); the next worker to start picks it up",
                run._meta.label,
                run.pk,
                type(exc).__name__,
                exc,
            )

    transaction.on_commit(send)


WAITS_FOR_WORKER = (
    "The task queue cannot be reached right now: the run is saved and will start when a worker is available."
)


def run_waits_for_worker(run: WorkerRun) -> bool:
    """Whether `run_enqueue` could not hand the run to the broker: it starts when a worker is available."""
    return bool(getattr(run, "_waits_for_worker", False))


def runs_resume(*, now: datetime | None = None) -> dict[str, list[int]]:
    """Queue again every unfinished run of every registered kind; returns the ids queued, by model label.

    Waiting runs and runs whose worker died (a stale heartbeat) are queued now. A RUNNING run with a fresh heartbeat
    is queued for the moment it would go stale: its worker may have died a moment ago (the delivery then takes it
    over) or be alive (the delivery then finds it fresh and retries until it ends). One kind that fails (its table
    locked, say) does not keep the others from resuming.
    """
    now = now or timezone.now()
    resumed: dict[str, list[int]] = {}
    for label, kind in list(_RUN_KINDS.items()):
        try:
            runs = kind.model.objects.filter(status__in=[WorkerRun.Status.QUEUED, WorkerRun.Status.RUNNING]).only(
                "pk", "status", "created_at", "started_at", "heartbeat_at"
            )
            for run in runs:
                wait = _seconds_until_stale(run, now=now)
                kind.task.apply_async((run.pk,), countdown=wait + RETRY_MARGIN_SECONDS if wait else None)
                resumed.setdefault(label, []).append(run.pk)
        except Exception:
            logger.exception("Could not look for %s runs to resume", label)
    return resumed


resume_when_a_worker_starts("worker runs", runs_resume)
