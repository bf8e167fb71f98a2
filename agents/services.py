"""Outcome graders and grading: create a grader, grade the project's trials with it in chunks.

A trial is a trace with a task_id and a trial number. Grading writes one TrialGrade per (grader, trace) — the
unique constraint makes a retried chunk or a second run harmless — and only ever grades trials without a grade,
so running a grader again picks up the trials imported since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Case, Exists, F, JSONField, OuterRef, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from agents.models import GradingRun, OutcomeGrader, TrialGrade
from agents.outcomes import subject_of
from annotation.models import Project, Trace
from annotation.services import DomainError
from judges.providers import ConfigError, TraceInput, assertion

# Assertions take microseconds; a chunk is sized so each one is a few round trips and progress moves often.
CHUNK_SIZE = 500
NAME_MAX = 100


def grader_config_clean(config: object) -> dict[str, Any]:
    """An assertion config for a grader, defaults filled in. Raises ConfigError naming the key at fault.

    The assertion's own `target` may only be "output": it means "what this grader looks at" (its final output
    or final state). The input is the task, not its outcome, so a check on it is refused.
    """
    cleaned = assertion.validate_config(config)
    if cleaned["target"] != "output":
        raise ConfigError(
            f"target: an outcome grader checks the final output or final state (chosen with the grader's target), "
            f"not {cleaned['target']!r}; leave target out"
        )
    return cleaned


@transaction.atomic
def grader_create(
    *,
    project: Project,
    name: str,
    target: str,
    config: object,
    user: AbstractBaseUser | None = None,
    description: str = "",
) -> OutcomeGrader:
    name = name.strip()
    if not name:
        raise DomainError("name: a grader needs a name")
    if len(name) > NAME_MAX:
        raise DomainError(f"name: at most {NAME_MAX} characters, got {len(name)}")
    if target not in OutcomeGrader.Target.values:
        raise DomainError(f"target: expected one of {', '.join(OutcomeGrader.Target.values)}, got {target!r}")
    try:
        cleaned = grader_config_clean(config)
    except ConfigError as exc:
        raise DomainError(f"config: {exc}") from None
    if OutcomeGrader.objects.filter(project=project, name=name).exists():
        raise DomainError(f"name: project {project.slug} already has a grader called {name!r}")
    return OutcomeGrader.objects.create(
        project=project, name=name, target=target, config=cleaned, created_by=user, description=description
    )


def trials(*, project: Project) -> QuerySet[Trace]:
    """The project's agent trials: traces with a task id and a trial number."""
    return Trace.objects.filter(project=project, trial__isnull=False).exclude(task_id="")


def ungraded_trials(*, grader: OutcomeGrader) -> QuerySet[Trace]:
    graded = TrialGrade.objects.filter(grader=grader, trace=OuterRef("pk"))
    return trials(project=grader.project).filter(~Exists(graded))


@dataclass(frozen=True)
class TrialView:
    """What grading reads of a trial: the end of it, and where it belongs."""

    id: int
    external_id: str
    task_id: str
    trial: int
    output: str
    messages: Any
    metadata: Any


def _trial_views(grader: OutcomeGrader, ids: list[int]) -> list[TrialView]:
    # Agent trajectories can be long: `messages` is only fetched when the output is empty (then the last assistant
    # message is the final output), and `metadata` only for final-state graders.
    wants_state = grader.target == OutcomeGrader.Target.FINAL_STATE
    rows = (
        Trace.objects.filter(pk__in=ids)
        .annotate(
            _messages=Case(When(output="", then=F("messages")), default=Value(None), output_field=JSONField()),
            _metadata=F("metadata") if wants_state else Value(None, output_field=JSONField()),
        )
        .order_by("pk")
        .values_list("id", "external_id", "task_id", "trial", "output", "_messages", "_metadata")
    )
    return [TrialView(*row) for row in rows]


def grade_trial(grader: OutcomeGrader, trace: Trace | TrialView) -> TrialGrade:
    """Apply the grader to one trial (unsaved). Only the end of the trial is read; see agents.outcomes."""
    subject = subject_of(grader.target, output=trace.output, messages=trace.messages, metadata=trace.metadata)
    grade = TrialGrade(grader=grader, trace_id=trace.id, task_id=trace.task_id, trial=trace.trial)
    if subject.text is None:
        grade.error = subject.error
        return grade
    outcome = assertion.judge(grader.config, TraceInput(external_id=trace.external_id, output=subject.text))
    grade.passed = outcome.verdict == "pass"
    reasoning = outcome.reasoning
    if grader.target == OutcomeGrader.Target.FINAL_STATE:
        # The assertion calls its subject "output"; here the subject is the final state.
        reasoning = reasoning.replace("output", "final state", 1)
    grade.reasoning = reasoning
    return grade


def _stale_before(now: datetime) -> datetime:
    # Shared with judge runs: this much silence after a chunk means the worker is gone.
    return now - timedelta(seconds=settings.EVALSTUDIO_JUDGE_STALE_SECONDS)


def claimable_runs(now: datetime) -> QuerySet[GradingRun]:
    """Runs a worker may take up: queued ones, and running ones whose worker has gone quiet."""
    stale = Q(status=GradingRun.Status.RUNNING) & (
        Q(heartbeat_at__lt=_stale_before(now)) | Q(heartbeat_at=None, started_at__lt=_stale_before(now))
    )
    return GradingRun.objects.filter(Q(status=GradingRun.Status.QUEUED) | stale)


def active_run(*, grader: OutcomeGrader) -> GradingRun | None:
    """The grader's queued or running run whose worker is alive, if any."""
    now = timezone.now()
    lost = claimable_runs(now).filter(status=GradingRun.Status.RUNNING)
    return (
        GradingRun.objects.filter(grader=grader, status__in=[GradingRun.Status.QUEUED, GradingRun.Status.RUNNING])
        .exclude(pk__in=lost.values("pk"))
        .order_by("-created_at", "-pk")
        .first()
    )


def grading_run_start(
    *, grader: OutcomeGrader, user: AbstractBaseUser | None = None, enqueue: bool = True
) -> GradingRun:
    """A run of the grader over its ungraded trials, queued for the worker after commit. While one is queued or
    running, that one is returned instead: pressing "Grade" twice starts one run."""
    from agents.tasks import grading_run_task

    with transaction.atomic():
        # Lock the grader so two simultaneous starts cannot both see "no active run".
        OutcomeGrader.objects.select_for_update().filter(pk=grader.pk).first()
        existing = active_run(grader=grader)
        if existing is not None:
            return existing
        run = GradingRun.objects.create(grader=grader, created_by=user)
        if enqueue:
            transaction.on_commit(lambda: grading_run_task.delay(run.pk))
    return run


def _claim(run: GradingRun) -> bool:
    now = timezone.now()
    return bool(
        claimable_runs(now)
        .filter(pk=run.pk)
        .update(status=GradingRun.Status.RUNNING, started_at=Coalesce("started_at", Value(now)), heartbeat_at=now)
    )


def grading_run_execute(*, run: GradingRun, chunk_size: int = CHUNK_SIZE) -> GradingRun:
    """Claim the run and grade every ungraded trial, a chunk at a time in trace-id order; returns the run.

    Does nothing when another worker holds the run. The ungraded trials are listed once, in one scan of the
    project's traces (ids only), and then loaded a chunk at a time by primary key: walking "the next 500 ungraded"
    with a query per chunk would rescan the project for every chunk. Trials imported meanwhile are left to the
    next run. A chunk that another worker graded first costs nothing: the unique constraint drops the duplicates.
    """
    if not _claim(run):
        run.refresh_from_db()
        return run
    grader = run.grader
    try:
        todo = list(ungraded_trials(grader=grader).order_by("pk").values_list("pk", flat=True))
        GradingRun.objects.filter(pk=run.pk).update(total=len(todo), graded=0)
        for start in range(0, len(todo), chunk_size):
            ids = todo[start : start + chunk_size]
            chunk = _trial_views(grader, ids)
            TrialGrade.objects.bulk_create([grade_trial(grader, trace) for trace in chunk], ignore_conflicts=True)
            GradingRun.objects.filter(pk=run.pk).update(graded=F("graded") + len(ids), heartbeat_at=timezone.now())
    except Exception as exc:
        GradingRun.objects.filter(pk=run.pk).update(
            status=GradingRun.Status.FAILED, error=f"{type(exc).__name__}: {exc}", finished_at=timezone.now()
        )
        raise
    GradingRun.objects.filter(pk=run.pk, status=GradingRun.Status.RUNNING).update(
        status=GradingRun.Status.DONE, finished_at=timezone.now()
    )
    run.refresh_from_db()
    return run
