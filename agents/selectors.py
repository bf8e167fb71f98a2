"""Reads for the agents pages. Every aggregate is a GROUP BY over one grader's grades (index trial_grade_by_task),
so the pages cost the same SQL at a hundred trials and at a million; Python only sees one row per distinct
(trials, passes) pair, or one page of tasks."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, FloatField, Q, QuerySet
from django.db.models.functions import Cast, NullIf

from agents.models import GraderPromotion, GradingRun, OutcomeGrader, TrialGrade
from agents.reliability import MAX_K, KRow, TaskCounts, TaskEstimate, overall, task_estimate
from annotation.models import Project
from judges.stats import wilson_interval

TRIALS_SHOWN = 500  # a task page lists at most this many trials
STATS_CACHE_SECONDS = 60


@dataclass(frozen=True)
class GraderTotals:
    tasks: int
    trials: int  # graded trials, errors included
    passed: int
    failed: int
    errors: int
    tasks_without_grade: int  # tasks whose every trial is an error: nothing to estimate


def graders(*, project: Project) -> list[OutcomeGrader]:
    return list(OutcomeGrader.objects.filter(project=project).select_related("created_by").order_by("name", "pk"))


def latest_runs(*, graders: list[OutcomeGrader]) -> dict[int, GradingRun]:
    """Each grader's most recent run (graders are few: one small query)."""
    latest: dict[int, GradingRun] = {}
    runs = GradingRun.objects.filter(grader__in=graders).order_by("grader_id", "-created_at", "-pk")
    for run in runs.distinct("grader_id") if connection.vendor == "postgresql" else runs:
        latest.setdefault(run.grader_id, run)
    return latest


def task_groups(*, grader: OutcomeGrader) -> list[tuple[int, int, int, int]]:
    """(n graded trials, c passes, e errors, how many tasks) for every distinct (n, c, e): one GROUP BY task_id
    over the grader's grades, then one over its result. Everything the summary and the statistics need."""
    grades = TrialGrade._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT n, c, e, COUNT(*) FROM (
                SELECT COUNT(*) FILTER (WHERE passed IS NOT NULL) AS n,
                       COUNT(*) FILTER (WHERE passed) AS c,
                       COUNT(*) FILTER (WHERE passed IS NULL) AS e
                FROM {grades} WHERE grader_id = %s GROUP BY task_id
            ) AS per_task
            GROUP BY n, c, e
            """,  # noqa: S608 - the table name is ours, the grader id a parameter
            [grader.pk],
        )
        return [tuple(row) for row in cursor.fetchall()]


def totals_of(groups: list[tuple[int, int, int, int]]) -> GraderTotals:
    return GraderTotals(
        tasks=sum(t for _, _, _, t in groups),
        trials=sum((n + e) * t for n, _, e, t in groups),
        passed=sum(c * t for _, c, _, t in groups),
        failed=sum((n - c) * t for n, c, _, t in groups),
        errors=sum(e * t for _, _, e, t in groups),
        tasks_without_grade=sum(t for n, _, _, t in groups if n == 0),
    )


def grader_totals(*, grader: OutcomeGrader) -> GraderTotals:
    return totals_of(task_groups(grader=grader))


def task_counts(*, grader: OutcomeGrader) -> list[TaskCounts]:
    """How many tasks have each (graded trials n, passes c), errors left out of n: the input of the statistics."""
    return [TaskCounts(n=n, c=c, tasks=t) for n, c, _, t in task_groups(grader=grader)]


def grader_statistics(*, grader: OutcomeGrader) -> tuple[GraderTotals, list[KRow]]:
    """The summary and the k table, cached until the grader's latest run moves on (grades only change through
    runs; deleted traces take their grades with them, which the short expiry covers)."""
    runs = GradingRun.objects.filter(grader=grader).order_by("-created_at", "-pk")
    latest = runs.values("pk", "status", "graded", "finished_at").first()
    # Creation times make the key unique across databases that reuse ids (a reset database, test runs).
    parts = [grader.pk, grader.created_at.timestamp()]
    if latest:
        finished = latest["finished_at"].timestamp() if latest["finished_at"] else 0
        parts += [latest["pk"], latest["status"], latest["graded"], finished]
    key = "agents:stats:" + ":".join(str(part) for part in parts)
    cached = cache.get(key)
    if cached is None:
        groups = task_groups(grader=grader)
        cached = (totals_of(groups), overall([TaskCounts(n=n, c=c, tasks=t) for n, c, _, t in groups]))
        cache.set(key, cached, STATS_CACHE_SECONDS)
    return cached


TASK_ORDERS = {
    "task": ("task_id",),
    "pass1": ("rate", "task_id"),  # least reliable first
    "-pass1": ("-rate", "task_id"),
    "trials": ("-n", "task_id"),
}


def task_rows(*, grader: OutcomeGrader, order: str = "task", search: str = "") -> QuerySet:
    """One row per task (task_id, n graded, c passed, errors, rate = c/n), to be sliced by a paginator."""
    rows = TrialGrade.objects.filter(grader=grader)
    if search:
        rows = rows.filter(task_id__icontains=search)
    rows = rows.values("task_id").annotate(
        n=Count("pk", filter=Q(passed__isnull=False)),
        c=Count("pk", filter=Q(passed=True)),
        errors=Count("pk", filter=Q(passed__isnull=True)),
        rate=Cast(F("c"), FloatField()) / NullIf(Cast(F("n"), FloatField()), 0.0),
    )
    return rows.order_by(*TASK_ORDERS.get(order, TASK_ORDERS["task"]))


def task_trials(*, grader: OutcomeGrader, task_id: str) -> list[TrialGrade]:
    return list(
        TrialGrade.objects.filter(grader=grader, task_id=task_id)
        .select_related("trace")
        .only("pk", "task_id", "trial", "passed", "reasoning", "error", "created_at", "trace__external_id")
        .order_by("trial", "pk")[:TRIALS_SHOWN]
    )


def task_summary(*, grader: OutcomeGrader, task_id: str) -> dict[str, int]:
    """n graded trials, c passes and errors of one task (over all its trials, not only those listed)."""
    return TrialGrade.objects.filter(grader=grader, task_id=task_id).aggregate(
        n=Count("pk", filter=Q(passed__isnull=False)),
        c=Count("pk", filter=Q(passed=True)),
        errors=Count("pk", filter=Q(passed__isnull=True)),
    )


def grader_promotion(*, grader: OutcomeGrader) -> GraderPromotion | None:
    """The grader's current promotion into production monitoring, if any."""
    return GraderPromotion.objects.filter(grader=grader, ended_at=None).select_related("promoted_by").first()


def grader_latest_run(*, grader: OutcomeGrader) -> GradingRun | None:
    """The grader's most recent run, finished or not."""
    return GradingRun.objects.filter(grader=grader).order_by("-created_at", "-pk").first()


@dataclass(frozen=True)
class TaskDetail:
    trials: list[TrialGrade]  # the first TRIALS_SHOWN, by trial number
    n: int  # graded trials (all of them, not only those listed)
    c: int  # passes
    errors: int  # trials that could not be graded
    pass_at_1_ci: tuple[float, float] | None
    estimates: list[TaskEstimate]  # pass@k and pass^k for k = 1 … min(MAX_K, n)

    @property
    def truncated(self) -> bool:
        return self.n + self.errors > len(self.trials)


def grader_task_detail(*, grader: OutcomeGrader, task_id: str) -> TaskDetail | None:
    """One task's trials and its estimates; None when the grader graded none of its trials."""
    trials = task_trials(grader=grader, task_id=task_id)
    if not trials:
        return None
    counts = task_summary(grader=grader, task_id=task_id)
    n, c = counts["n"], counts["c"]
    return TaskDetail(
        trials=trials,
        n=n,
        c=c,
        errors=counts["errors"],
        pass_at_1_ci=wilson_interval(c, n),
        estimates=[task_estimate(n, c, k) for k in range(1, min(MAX_K, n) + 1)],
    )
