"""Models of the agents app: outcome graders, their grading runs, and one grade per (grader, trial)."""

from __future__ import annotations

import json

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from annotation.models import Project, Trace
from core.runs import WorkerRun


class OutcomeGrader(models.Model):
    """An assertion on what an agent's trial ended with (its final output or final state) or, with the tool-calls
    target, on the path it took (which tools it called, with which arguments): a check of the path says nothing of
    the outcome, and the page says so.

    A grader is immutable once created: its config and target never change, so every grade it wrote stays the
    answer of the same check. To change a check, create a new grader (grading is cheap); the old one keeps its
    grades for comparison.
    """

    class Target(models.TextChoices):
        FINAL_OUTPUT = "final_output", "Final output"
        FINAL_STATE = "final_state", "Final state (JSON)"
        TOOL_CALLS = "tool_calls", "Tool calls (the path)"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="outcome_graders")
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    target = models.CharField(max_length=16, choices=Target.choices, default=Target.FINAL_OUTPUT)
    # A validated assertion config (judges.providers.assertion.validate_config), defaults filled in.
    config = models.JSONField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="outcome_grader_unique_name")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_target_display()})"

    @property
    def config_json(self) -> str:
        return json.dumps(self.config, ensure_ascii=False, sort_keys=True)


class GradingRun(WorkerRun):
    """One pass of a grader over the project's trials that it has not graded yet."""

    grader = models.ForeignKey(OutcomeGrader, on_delete=models.CASCADE, related_name="runs")
    # Trials still ungraded when the run was planned, and how many of those it has graded so far.
    total = models.PositiveIntegerField(default=0)
    graded = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta(WorkerRun.Meta):
        indexes = [models.Index(fields=["grader", "status"], name="grading_run_by_status")]

    def __str__(self) -> str:
        return f"{self.grader.name} run {self.pk} ({self.status})"

    @property
    def percent(self) -> int:
        if not self.total:
            return 100 if self.is_finished else 0
        return min(100, round(100 * self.graded / self.total))


class TrialGrade(models.Model):
    """A grader's answer for one trial: passed, failed, or an error (the trial could not be graded: `passed` is
    null and `error` says why; an error is never a pass and is not counted as a trial in pass@k)."""

    grader = models.ForeignKey(OutcomeGrader, on_delete=models.CASCADE, related_name="grades")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="+")
    # Copied from the trace when graded, so the per-task aggregation is one indexed GROUP BY on this table.
    task_id = models.CharField(max_length=255)
    trial = models.IntegerField()
    passed = models.BooleanField(null=True)
    reasoning = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            # Exactly one grade per (grader, trial), however often a chunk is retried or a run repeated.
            models.UniqueConstraint(fields=["grader", "trace"], name="trial_grade_unique_grader_trace"),
            models.CheckConstraint(
                condition=Q(passed__isnull=True, error__gt="") | Q(passed__isnull=False, error=""),
                name="trial_grade_verdict_or_error",
            ),
        ]
        indexes = [
            # GROUP BY task_id for one grader, and one task's trials in order, are range scans of this index.
            models.Index(fields=["grader", "task_id", "trial"], name="trial_grade_by_task"),
        ]

    def __str__(self) -> str:
        outcome = "error" if self.passed is None else ("pass" if self.passed else "fail")
        return f"{self.task_id}#{self.trial}: {outcome}"


class GraderPromotion(models.Model):
    """An outcome grader promoted into production monitoring: from `promoted_at` on, monitoring judges the project's
    production agent trials with it (agents.monitored), and their task-completion rate is a series with intervals
    and alert rules like any criterion's. At most one current per grader; ending it stops the series (its verdicts
    and alerts are kept), and promoting again continues it."""

    grader = models.ForeignKey(OutcomeGrader, on_delete=models.CASCADE, related_name="promotions")
    promoted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    promoted_at = models.DateTimeField(default=timezone.now)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-promoted_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["grader"], condition=Q(ended_at=None), name="grader_promotion_one_current_per_grader"
            )
        ]

    def __str__(self) -> str:
        return f"{self.grader.name} in monitoring since {self.promoted_at:%Y-%m-%d %H:%M}"
