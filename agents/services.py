"""Outcome graders and grading: create a grader, grade the project's trials with it in chunks.

A trial is a trace with a task_id and a trial number. Grading writes one TrialGrade per (grader, trace) — the
unique constraint makes a retried chunk or a second run harmless — and only ever grades trials without a grade,
so running a grader again picks up the trials imported since. A grading run is a worker run (core.runs): one whose
worker died is taken over and grades only what is still ungraded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Case, Exists, F, JSONField, OuterRef, QuerySet, Value, When
from django.utils import timezone

from agents.models import GraderPromotion, GradingRun, OutcomeGrader, TrialGrade
from agents.outcomes import NO_PATH, TOOL_CALLS, subject_of
from annotation.models import Project, Trace
from annotation.services import DomainError
from core.json_input import JsonTooDeep, json_depth_check
from core.runs import live_runs, run_claim, run_enqueue, run_fail, run_finish, run_heartbeat, run_working
from judges.providers import ConfigError, Outcome, TraceInput, assertion
from judges.providers.tool_calls import TOOL_CHECK_MODELS

# Assertions take microseconds; a chunk is sized so each one is a few round trips and progress moves often.
CHUNK_SIZE = 500
NAME_MAX = 100


def grader_config_clean(config: object, *, target: str) -> dict[str, Any]:
    """An assertion config for a grader looking at `target` (OutcomeGrader.Target), defaults filled in. Raises
    ConfigError naming the key at fault.

    A tool-calls grader takes a tool check, and only it does. Otherwise the assertion's own `target` may only be
    "output": it means "what this grader looks at" (its final output or final state). The input is the task, not
    its outcome, so a check on it is refused.
    """
    try:
        json_depth_check(config, where="config")
    except JsonTooDeep as exc:
        raise ConfigError(str(exc)) from None
    cleaned = assertion.validate_config(config)
    if target == OutcomeGrader.Target.TOOL_CALLS:
        if cleaned["target"] != TOOL_CALLS:
            raise ConfigError(
                f"check: a tool-calls grader takes a tool check ({', '.join(TOOL_CHECK_MODELS)}), "
                f"got {cleaned['check']!r}"
            )
        return cleaned
    if cleaned["target"] == TOOL_CALLS:
        end = "final state" if target == OutcomeGrader.Target.FINAL_STATE else "final output"
        raise ConfigError(
            f"target: a tool check is about the path (the trial's tool calls), not its {end}: choose the grader "
            f"target {OutcomeGrader.Target.TOOL_CALLS.value}"
        )
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
        cleaned = grader_config_clean(config, target=target)
    except ConfigError as exc:
        raise DomainError(f"config: {exc}") from None
    if OutcomeGrader.objects.filter(project=project, name=name).exists():
        raise DomainError(f"name: project {project.slug} already has a grader called {name!r}")
    return OutcomeGrader.objects.create(
        project=project, name=name, target=target, config=cleaned, created_by=user, description=description
    )


def only_trials(traces: QuerySet[Trace]) -> QuerySet[Trace]:
    """The agent trials among `traces`: those with a task id and a trial number."""
    return traces.filter(trial__isnull=False).exclude(task_id="")


def trials(*, project: Project) -> QuerySet[Trace]:
    """The project's agent trials."""
    return only_trials(Trace.objects.filter(project=project))


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
    # message is the final output) or the grader reads the tool calls, and `metadata` only for final-state graders.
    wants_state = grader.target == OutcomeGrader.Target.FINAL_STATE
    wants_path = grader.target == OutcomeGrader.Target.TOOL_CALLS
    rows = (
        Trace.objects.filter(pk__in=ids)
        .annotate(
            _messages=F("messages")
            if wants_path
            else Case(When(output="", then=F("messages")), default=Value(None), output_field=JSONField()),
            _metadata=F("metadata") if wants_state else Value(None, output_field=JSONField()),
        )
        .order_by("pk")
        .values_list("id", "external_id", "task_id", "trial", "output", "_messages", "_metadata")
    )
    return [TrialView(*row) for row in rows]


def grade_trial(grader: OutcomeGrader, trace: Trace | TrialView) -> TrialGrade:
    """Apply the grader to one trial (unsaved). Only the end of the trial is read, or with the tool-calls target
    only its tool calls; see agents.outcomes."""
    grade = TrialGrade(grader=grader, trace_id=trace.id, task_id=trace.task_id, trial=trace.trial)
    if grader.target == OutcomeGrader.Target.TOOL_CALLS:
        if not isinstance(trace.messages, list):
            grade.error = NO_PATH
            return grade
        outcome = assertion.judge(grader.config, TraceInput(external_id=trace.external_id, messages=trace.messages))
        grade.passed, grade.reasoning = outcome.verdict == "pass", outcome.reasoning
        if outcome.error:  # a schema that cannot be applied: never a pass
            grade.passed, grade.error = None, outcome.error
        return grade
    subject = subject_of(grader.target, output=trace.output, messages=trace.messages, metadata=trace.metadata)
    if subject.text is None:
        grade.error = subject.error
        return grade
    outcome = assertion.judge(grader.config, TraceInput(external_id=trace.external_id, output=subject.text))
    if outcome.error:  # a schema that cannot be applied (a remote $ref stored before they were refused): never a fail
        grade.error = outcome.error
        return grade
    grade.passed = outcome.verdict == "pass"
    reasoning = outcome.reasoning
    if grader.target == OutcomeGrader.Target.FINAL_STATE:
        # The assertion calls its subject "output"; here the subject is the final state.
        reasoning = reasoning.replace("output", "final state", 1)
    grade.reasoning = reasoning
    return grade


def grader_outcome(grader: OutcomeGrader, trace: TraceInput) -> Outcome:
    """The grader's answer on one trace, as production monitoring records it (agents.monitored): a pass, a fail,
    or an error (no final state) that is neither. The grade's own ids are not needed: only the end of the trial is
    read."""
    view = TrialView(
        id=0,
        external_id=trace.external_id,
        task_id="",
        trial=0,
        output=trace.output,
        messages=trace.messages,
        metadata=trace.metadata,
    )
    grade = grade_trial(grader, view)
    if grade.passed is None:
        return Outcome(error=grade.error)
    return Outcome(verdict="pass" if grade.passed else "fail", reasoning=grade.reasoning)


@transaction.atomic
def grader_promote(*, grader: OutcomeGrader, user: AbstractBaseUser | None = None) -> GraderPromotion:
    """Promote the grader into production monitoring: the task completion of the project's production agent
    trials becomes a monitored series. Promoting a grader that is already promoted returns its promotion."""
    OutcomeGrader.objects.select_for_update().filter(pk=grader.pk).first()
    current = GraderPromotion.objects.filter(grader=grader, ended_at=None).first()
    if current is not None:
        return current
    return GraderPromotion.objects.create(grader=grader, promoted_by=user)


@transaction.atomic
def grader_withdraw(*, grader: OutcomeGrader, user: AbstractBaseUser | None = None) -> GraderPromotion | None:
    """End the grader's promotion into monitoring, if any: monitoring stops judging with it and keeps its verdicts."""
    OutcomeGrader.objects.select_for_update().filter(pk=grader.pk).first()
    current = GraderPromotion.objects.filter(grader=grader, ended_at=None).first()
    if current is not None:
        current.ended_at, current.ended_by = timezone.now(), user
        current.save(update_fields=["ended_at", "ended_by"])
    return current


def active_run(*, grader: OutcomeGrader) -> GradingRun | None:
    """The grader's queued or running run whose worker is alive, if any."""
    return live_runs(GradingRun).filter(grader=grader).order_by("-created_at", "-pk").first()


def grading_run_create(*, grader: OutcomeGrader, user: AbstractBaseUser | None = None) -> GradingRun:
    """A queued run of the grader over its ungraded trials. While one is queued or running, that one is returned
    instead: pressing "Grade" twice makes one run."""
    return _create_unless_active(grader, user)[0]


def grading_run_enqueue(*, grader: OutcomeGrader, user: AbstractBaseUser | None = None) -> GradingRun:
    """`grading_run_create`, and a new run is handed to the worker once the row is committed."""
    with transaction.atomic():
        run, created = _create_unless_active(grader, user)
        if created:
            run_enqueue(run=run)
    return run


def _create_unless_active(grader: OutcomeGrader, user: AbstractBaseUser | None) -> tuple[GradingRun, bool]:
    with transaction.atomic():
        # Lock the grader so two simultaneous creates cannot both see "no active run".
        OutcomeGrader.objects.select_for_update().filter(pk=grader.pk).first()
        existing = active_run(grader=grader)
        if existing is not None:
            return existing, False
        return GradingRun.objects.create(grader=grader, created_by=user), True


def grading_run_execute(*, run: GradingRun, chunk_size: int = CHUNK_SIZE) -> GradingRun:
    """Claim the run and grade every ungraded trial, a chunk at a time in trace-id order; returns the run.

    Does nothing when another worker holds the run. The ungraded trials are listed once, in one scan of the
    project's traces (ids only), and then loaded a chunk at a time by primary key: walking "the next 500 ungraded"
    with a query per chunk would rescan the project for every chunk. Trials imported meanwhile are left to the
    next run. A chunk that another worker graded first costs nothing: the unique constraint drops the duplicates.
    A takeover after a worker died grades only what is still ungraded, and keeps counting from what was graded.
    """
    if not run_claim(run=run):
        run.refresh_from_db()
        return run
    grader = run.grader
    try:
        with run_working(run=run):
            todo = list(ungraded_trials(grader=grader).order_by("pk").values_list("pk", flat=True))
            if run.attempts > 1:
                run_heartbeat(run=run, total=F("graded") + len(todo))
            else:
                run_heartbeat(run=run, total=len(todo), graded=0)
            for start in range(0, len(todo), chunk_size):
                ids = todo[start : start + chunk_size]
                chunk = _trial_views(grader, ids)
                TrialGrade.objects.bulk_create([grade_trial(grader, trace) for trace in chunk], ignore_conflicts=True)
                run_heartbeat(run=run, graded=F("graded") + len(ids))
    except Exception as exc:
        run_fail(run=run, error=exc)
        raise
    run_finish(run=run)
    run.refresh_from_db()
    return run
