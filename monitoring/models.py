"""Production monitoring: the verdicts of monitored checks (promoted judge versions, outcome graders promoted into
monitoring) on production traces, the series they make, and alert rules on them."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from annotation.models import Criterion, Project, Trace, Verdict


class SamplingRate(models.Model):
    """The share of a project's production traces that monitoring judges, from one point in its trace stream on.

    A trace is sampled when a hash of its id falls under the rate in force when it was stored (monitoring.sampling),
    so a rate change applies to the traces stored after it and every trace keeps whether it was sampled. Rows are
    the history; the latest is the current rate (DEFAULT_SAMPLING_RATE of monitoring.sampling without one).
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="sampling_rates")
    rate = models.FloatField()
    # Traces with a larger id are sampled at this rate, until the next change. Trace ids only grow, so this is the
    # largest id when the rate was set.
    after_trace_id = models.BigIntegerField()
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    set_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["project", "after_trace_id", "id"]
        indexes = [models.Index(fields=["project", "after_trace_id"], name="sampling_rate_history")]
        constraints = [
            models.CheckConstraint(condition=Q(rate__gte=0) & Q(rate__lte=1), name="sampling_rate_is_a_share")
        ]

    def __str__(self) -> str:
        return f"{self.project}: {self.rate:.0%} after trace {self.after_trace_id}"


def series_path(slug: str, provider: str, subject_id: int, criterion_id: int | None) -> str:
    """The page of a series; a criterion's keeps the address it always had."""
    if criterion_id is not None:
        return reverse("monitoring_criterion", args=[slug, criterion_id])
    return reverse("monitoring_series", args=[slug, provider, subject_id])


class MonitoredSeries(models.Model):
    """What one monitoring page shows and its alert rules watch: the pass rate over time of one subject, e.g. a
    criterion (judged by its promoted judge version) or an agent's task completion (an outcome grader promoted into
    monitoring).

    The subject belongs to the app that registered `provider` (judges.monitored); `subject_id` is its id there, and
    `name` its name when last seen (alert messages keep working when the subject is gone). `criterion` is set when
    the subject is a criterion, so that deleting the criterion deletes its series, rules and verdicts.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    provider = models.CharField(max_length=32)
    subject_id = models.BigIntegerField()
    name = models.CharField(max_length=255)
    criterion = models.ForeignKey(Criterion, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "subject_id"], name="monitored_series_unique_subject")
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return series_path(self.project.slug, self.provider, self.subject_id, self.criterion_id)


class MonitoredCheck(models.Model):
    """One check monitoring has run on a series' production traffic: a promoted judge version, an outcome grader.

    Each has its own cursor (MonitorCursor) and verdict rows (MonitorJudgment); a new promotion is a new check, and
    the earlier checks' verdicts are kept. `key` is the provider's id of the check, `label` its name then.
    """

    series = models.ForeignKey(MonitoredSeries, on_delete=models.CASCADE, related_name="checks")
    key = models.BigIntegerField()
    label = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "key"], name="monitored_check_unique_key")]

    def __str__(self) -> str:
        return self.label


class SeriesTraffic(models.Model):
    """Whether a series is judged on all of the project's production traffic or on the sample, from one point in
    the trace stream on; rows are the history, the latest is in force (none: the sample).

    Like the sampling rate (SamplingRate), a change applies to the traces stored after it, so every trace keeps
    whether it was judged. All traffic applies only to a check that runs here without paying anyone (an assertion
    or classifier judge, an outcome grader); a paid one (an LLM judge) judges the sample whatever this says.
    """

    series = models.ForeignKey(MonitoredSeries, on_delete=models.CASCADE, related_name="traffic")
    all_traffic = models.BooleanField()
    # Traces with a larger id follow this setting, until the next change (as SamplingRate.after_trace_id).
    after_trace_id = models.BigIntegerField()
    set_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    set_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["series", "after_trace_id", "id"]
        indexes = [models.Index(fields=["series", "after_trace_id"], name="series_traffic_history")]

    def __str__(self) -> str:
        share = "all traffic" if self.all_traffic else "the sample"
        return f"{self.series}: {share} after trace {self.after_trace_id}"


class MonitorCursor(models.Model):
    """How far one check has got through its project's production traces (in trace id order), judging the
    sampled ones (or all of them, when its series judges all traffic).

    A drain claims the next chunk by taking a lease under a row lock (lease_token, lease_until, claimed_upto),
    judges it without holding any lock, then writes the verdicts and advances last_trace_id in one transaction.
    Two drains never judge the same chunk while a lease holds; a drain whose worker died leaves an expired
    lease, and the next drain judges that chunk again (the unique (check, trace) constraint keeps one verdict).
    """

    monitored_check = models.OneToOneField(MonitoredCheck, on_delete=models.CASCADE, related_name="+")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    last_trace_id = models.BigIntegerField(default=0)
    lease_token = models.CharField(max_length=32, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    claimed_upto = models.BigIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.monitored_check} at trace {self.last_trace_id}"


class MonitorJudgment(models.Model):
    """A check's verdict on one production trace it judged.

    Kept apart from judges.Judgment: those belong to runs over labelled splits, and their pages and reports count
    them. occurred_at is copied from the trace so that the time series is one index range scan on this table
    (check, occurred_at) with no join to the trace table, at a million traces.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    # No index of its own: the unique (check, trace) and the series index both lead with it.
    monitored_check = models.ForeignKey(MonitoredCheck, on_delete=models.CASCADE, related_name="+", db_index=False)
    trace = models.ForeignKey(Trace, on_delete=models.CASCADE, related_name="+")
    occurred_at = models.DateTimeField()
    # Empty when judging failed: an error is neither a pass nor a fail, and is left out of every rate.
    verdict = models.CharField(max_length=4, choices=Verdict.choices, blank=True)
    reasoning = models.TextField(blank=True)
    error = models.TextField(blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    prompt_tokens = models.PositiveIntegerField(null=True, blank=True)
    completion_tokens = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.FloatField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["monitored_check", "trace"], name="monitor_judgment_unique_check_trace")
        ]
        # Covering (verdict included), so a window's counts per bucket are an index-only range scan.
        indexes = [
            models.Index(fields=["monitored_check", "occurred_at"], include=["verdict"], name="monitor_judgment_series")
        ]

    def __str__(self) -> str:
        return f"{self.monitored_check} on {self.trace_id}: {self.verdict or 'error'}"


class Bucket(models.TextChoices):
    HOUR = "hour", "Hour"
    DAY = "day", "Day"


def new_webhook_secret() -> str:
    """A rule's webhook signing key: 256 random bits, prefixed so that it is recognisable in a receiver's config."""
    return "whsec_" + secrets.token_urlsafe(32)


class AlertRule(models.Model):
    """Fires when the latest complete bucket's interval of a series crosses a threshold, once per crossing."""

    class Metric(models.TextChoices):
        OBSERVED = "observed", "Observed pass rate (the judge's)"
        CORRECTED = "corrected", "Corrected pass rate"

    class Bound(models.TextChoices):
        # "Upper bound below 90%": confident the pass rate dropped under 90% (few false alarms).
        UPPER = "upper", "Upper bound of the interval"
        # "Lower bound below 90%": the pass rate may be under 90% (early warning, more alarms).
        LOWER = "lower", "Lower bound of the interval"

    class Side(models.TextChoices):
        BELOW = "below", "falls below the threshold"
        ABOVE = "above", "rises above the threshold"

    class State(models.TextChoices):
        OK = "ok", "OK"
        FIRING = "firing", "Firing"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    series = models.ForeignKey(MonitoredSeries, on_delete=models.CASCADE, related_name="rules")
    metric = models.CharField(max_length=16, choices=Metric.choices, default=Metric.OBSERVED)
    bound = models.CharField(max_length=8, choices=Bound.choices, default=Bound.UPPER)
    side = models.CharField(max_length=8, choices=Side.choices, default=Side.BELOW)
    threshold = models.FloatField()
    bucket = models.CharField(max_length=8, choices=Bucket.choices, default=Bucket.HOUR)
    # Fewer judged traces than this in a bucket: no decision (the state stays), as an interval that wide says little.
    min_sample = models.PositiveIntegerField(default=20)
    webhook_url = models.URLField(max_length=500, blank=True)
    # Signs every delivery (X-EvalStudio-Signature) so that the receiver can tell it came from here, unchanged.
    webhook_secret = models.CharField(max_length=64, default=new_webhook_secret, editable=False)
    enabled = models.BooleanField(default=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.OK)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_bucket_start = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.series}: {self.describe()}"

    def describe(self) -> str:
        metric = "observed" if self.metric == self.Metric.OBSERVED else "corrected"
        return f"{metric} pass rate's {self.bound} bound {self.side} {self.threshold:.0%} (per {self.bucket})"

    def crosses(self, low: float, high: float) -> bool:
        """Whether an interval [low, high] is past the threshold by this rule."""
        value = high if self.bound == self.Bound.UPPER else low
        return value < self.threshold if self.side == self.Side.BELOW else value > self.threshold


class Alert(models.Model):
    """One crossing of an alert rule: opened when it fired, resolved when the bound came back."""

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="+")
    series = models.ForeignKey(MonitoredSeries, on_delete=models.CASCADE, related_name="+")
    # The check whose verdicts fired it (the traces behind the alert are its fails in the bucket).
    monitored_check = models.ForeignKey(MonitoredCheck, null=True, on_delete=models.SET_NULL, related_name="+")
    bucket = models.CharField(max_length=8, choices=Bucket.choices)
    bucket_start = models.DateTimeField()
    bucket_end = models.DateTimeField()
    # The numbers that fired it: judged traces, the judge's passes, the metric with its interval.
    judged = models.PositiveIntegerField()
    passes = models.PositiveIntegerField()
    value = models.FloatField()
    low = models.FloatField()
    high = models.FloatField()
    message = models.TextField()
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    webhook_attempts = models.PositiveSmallIntegerField(default=0)
    webhook_sent_at = models.DateTimeField(null=True, blank=True)
    webhook_status = models.PositiveSmallIntegerField(null=True, blank=True)
    webhook_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [
            # The banner on every project page: open alerts of one project, a tiny partial index.
            models.Index(fields=["project", "-opened_at"], name="alert_open", condition=Q(resolved_at=None)),
        ]

    def __str__(self) -> str:
        return self.message

    def get_absolute_url(self) -> str:
        return reverse("monitoring_alert", args=[self.project.slug, self.pk])

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None
