"""Golden sets (versioned lists of traces a release must keep passing) and the regression-suite runs over them."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from annotation.models import Criterion, Project, Trace, Verdict
from annotation.trace_format import reference_cell
from core.runs import WorkerRun
from judges.models import JudgeVersion


class GoldenSet(models.Model):
    """A project's golden set. Every change makes a new version; old versions stay readable (see GoldenEntry)."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="golden_set")
    current_version = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.project} golden set v{self.current_version}"


class GoldenSetVersion(models.Model):
    """One change to a golden set: its number, who made it and what changed."""

    golden_set = models.ForeignKey(GoldenSet, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    size = models.PositiveIntegerField()
    summary = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["golden_set", "-number"]
        constraints = [models.UniqueConstraint(fields=["golden_set", "number"], name="golden_version_unique_number")]

    def __str__(self) -> str:
        return f"v{self.number}"


class GoldenEntry(models.Model):
    """A trace's membership of a golden set over a range of versions: in version k when
    added_in <= k and (removed_in is empty or removed_in > k). A change touches one row, whatever the set's size."""

    class Reason(models.TextChoices):
        CORE_FEATURE = "core_feature", "Core feature"
        PAST_REGRESSION = "past_regression", "Past regression"
        EDGE_CASE = "edge_case", "Edge case"

    golden_set = models.ForeignKey(GoldenSet, on_delete=models.CASCADE, related_name="entries")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="golden_entries")
    reason = models.CharField(max_length=16, choices=Reason.choices)
    comment = models.TextField(blank=True)
    added_in = models.PositiveIntegerField()
    removed_in = models.PositiveIntegerField(null=True, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    added_at = models.DateTimeField(default=timezone.now)
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["golden_set", "added_in", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["golden_set", "trace"], condition=Q(removed_in=None), name="golden_entry_one_current"
            )
        ]

    def __str__(self) -> str:
        return f"{self.trace_id} ({self.reason}) v{self.added_in}–{self.removed_in or ''}"


class ReferenceEdit(models.Model):
    """Who set a trace's reference (its known-good answer, annotation.Trace.reference) from the golden-set page, when,
    and to what (null: cleared). The trace holds the current value; these rows are its history, newest last."""

    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="reference_edits")
    reference = models.JSONField(null=True, blank=True)
    # What the trace held before: the history reads on its own, even for a reference that came from a file.
    previous = models.JSONField(null=True, blank=True)
    edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    edited_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["trace", "edited_at", "id"]

    def __str__(self) -> str:
        return f"{self.trace_id} reference at {self.edited_at:%Y-%m-%d %H:%M}"

    @property
    def reference_text(self) -> str:
        """The value set, as a page shows it (see Trace.reference_text); "" when it was cleared."""
        return "" if self.reference is None else reference_cell(self.reference)


class SuiteFloor(models.Model):
    """The pass rate a release must reach on a criterion in a regression suite; a criterion without one has no
    floor, and only a significant regression against the baseline fails the suite on it."""

    criterion = models.OneToOneField(Criterion, on_delete=models.CASCADE, primary_key=True, related_name="suite_floor")
    min_pass_rate = models.FloatField()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(min_pass_rate__gte=0) & Q(min_pass_rate__lte=1), name="suite_floor_is_a_rate"
            )
        ]

    def __str__(self) -> str:
        return f"{self.criterion}: at least {self.min_pass_rate:.0%}"


class SuiteRun(WorkerRun):
    """One regression-suite run: candidate outputs for a golden set's inputs, judged by the promoted judges."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="suite_runs")
    # A label for this run (a release, a commit); later runs name it as their baseline.
    name = models.CharField(max_length=200, blank=True)
    golden_version = models.PositiveIntegerField()
    candidates_file = models.CharField(max_length=500, blank=True)
    # The run this one was compared with; empty when compared with the golden traces' own outputs.
    baseline = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    include_llm = models.BooleanField(default=False)
    # Per criterion: pass rate with interval, difference to the baseline with the paired test, verdict.
    summary = models.JSONField(default=dict, blank=True)
    exit_code = models.SmallIntegerField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return self.name or f"suite run {self.pk}"


class SuiteCase(models.Model):
    """A candidate output for one golden input."""

    run = models.ForeignKey(SuiteRun, on_delete=models.CASCADE, related_name="cases")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="+")
    output = models.TextField(blank=True)
    messages = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "trace"], name="suite_case_unique_trace")]

    def __str__(self) -> str:
        return f"run {self.run_id}, trace {self.trace_id}"


class SuiteVerdict(models.Model):
    """A promoted judge's verdict on one candidate output for one criterion (empty verdict: an error)."""

    case = models.ForeignKey(SuiteCase, on_delete=models.CASCADE, related_name="verdicts")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="+")
    judge_version = models.ForeignKey(JudgeVersion, on_delete=models.PROTECT, related_name="+")
    verdict = models.CharField(max_length=4, choices=Verdict.choices, blank=True)
    reasoning = models.TextField(blank=True)
    error = models.TextField(blank=True)
    # What the same judge version said of the baseline's output for this input, which this verdict was paired
    # with: "pass", "fail", "error", or "" when the baseline has no such case.
    baseline_verdict = models.CharField(max_length=5, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["case", "criterion"], name="suite_verdict_unique_criterion")]

    def __str__(self) -> str:
        return f"case {self.case_id}, criterion {self.criterion_id}: {self.verdict or 'error'}"


class PairwiseComparison(WorkerRun):
    """Two suite runs' outputs for the same golden inputs compared pair by pair by an LLM judge version on one
    criterion, every pair asked in both orders (suites.pairwise): a preference counts only when the orders agree."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="pairwise_comparisons")
    baseline = models.ForeignKey(SuiteRun, on_delete=models.CASCADE, related_name="+")
    candidate = models.ForeignKey(SuiteRun, on_delete=models.CASCADE, related_name="+")
    criterion = models.ForeignKey(Criterion, on_delete=models.CASCADE, related_name="+")
    judge_version = models.ForeignKey(JudgeVersion, on_delete=models.PROTECT, related_name="+")
    pairs_total = models.PositiveIntegerField(default=0)
    pairs_done = models.PositiveIntegerField(default=0)
    # The tally (judges.providers.pairwise.Tally.as_dict) with what the run cost, once done.
    summary = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"pairwise comparison {self.pk}: run {self.candidate_id} vs run {self.baseline_id}"


class PairwiseVerdict(models.Model):
    """One golden case's pair: the answer with the baseline's output shown first and with the candidate's shown
    first ("A", "B", "tie"; empty for an error), and what they make together."""

    class Outcome(models.TextChoices):
        BASELINE = "baseline", "Baseline preferred"
        CANDIDATE = "candidate", "Candidate preferred"
        TIE = "tie", "Tie"
        INCONSISTENT = "inconsistent", "Orders disagree"
        ERROR = "error", "Error"

    comparison = models.ForeignKey(PairwiseComparison, on_delete=models.CASCADE, related_name="verdicts")
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="+")
    outcome = models.CharField(max_length=12, choices=Outcome.choices)
    baseline_first = models.CharField(max_length=3, blank=True)
    baseline_first_reasoning = models.TextField(blank=True)
    candidate_first = models.CharField(max_length=3, blank=True)
    candidate_first_reasoning = models.TextField(blank=True)
    error = models.TextField(blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["comparison", "trace"], name="pairwise_verdict_unique_trace")]
        indexes = [models.Index(fields=["comparison", "outcome"], name="pairwise_verdict_outcome")]

    def __str__(self) -> str:
        return f"comparison {self.comparison_id}, trace {self.trace_id}: {self.outcome}"
