"""Users' feedback beside the judges in monitoring: the negative-feedback rate of production traces per bucket, and
how often users' feedback and a criterion's monitored judge agree.

A trace counts once per bucket (of its `occurred_at`, the axis of every monitoring series): it has *polar* feedback
when at least one thumbs or rating came in (comments carry no polarity), and it is *negative* when any of them is
negative (thumbs down, a rating at most 40% of its scale — annotation.feedback). The rate is negative / polar with
its exact (Clopper–Pearson) 95% interval, as the judge's observed rate.

Agreement pairs each production trace with both a judge verdict (pass/fail) and polar feedback: judge fail with
negative feedback, and judge pass without, agree. Users complain about anything and judges check one criterion, so
low agreement is expected for a narrow criterion; the table shows where they part.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import Count, Exists, OuterRef, Q
from django.db.models.functions import Trunc

from annotation.models import Feedback, Project, Trace
from judges.stats import proportion_interval
from monitoring.models import MonitorJudgment
from monitoring.series import BUCKET_LENGTH, truncate

PRODUCTION = "production"


@dataclass(frozen=True)
class FeedbackBucket:
    start: datetime
    polar: int  # traces with a thumbs or a rating
    negative: int  # of those, traces with negative feedback
    rate: float | None
    low: float | None
    high: float | None


def feedback_bucket(start: datetime, polar: int, negative: int) -> FeedbackBucket:
    interval = proportion_interval(negative, polar)
    if interval is None:
        return FeedbackBucket(start, polar, negative, None, None, None)
    return FeedbackBucket(start, polar, negative, negative / polar, interval[0], interval[1])


def _polar_traces() -> Exists:
    return Exists(Feedback.objects.filter(trace=OuterRef("pk"), negative__isnull=False))


def _negative_traces() -> Exists:
    return Exists(Feedback.objects.filter(trace=OuterRef("pk"), negative=True))


def negative_feedback_series(
    *, project: Project, bucket: str, window: timedelta, now: datetime
) -> list[FeedbackBucket]:
    """Per bucket over `window` (ending with the bucket in progress at `now`, oldest first, empty buckets
    included): production traces with polar feedback, how many of them negative, the rate and its interval."""
    end = truncate(now.astimezone(UTC), bucket) + BUCKET_LENGTH[bucket]
    start = end - window
    rows = (
        Trace.objects.filter(project=project, source=PRODUCTION, occurred_at__gte=start, occurred_at__lt=end)
        .filter(_polar_traces())
        .annotate(bucket_start=Trunc("occurred_at", bucket, tzinfo=UTC), is_negative=_negative_traces())
        .values("bucket_start")
        .annotate(polar=Count("id"), negative=Count("id", filter=Q(is_negative=True)))
        .order_by("bucket_start")
    )
    counts = {row["bucket_start"]: (row["polar"], row["negative"]) for row in rows}
    buckets = []
    moment = start
    while moment < end:
        polar, negative = counts.get(moment, (0, 0))
        buckets.append(feedback_bucket(moment, polar, negative))
        moment += BUCKET_LENGTH[bucket]
    return buckets


@dataclass(frozen=True)
class Agreement:
    """The 2×2 table of a judge's verdict against users' feedback on the same traces."""

    judge_pass_positive: int  # agree
    judge_pass_negative: int  # users unhappy, the judge saw nothing wrong on its criterion
    judge_fail_positive: int  # the judge flags what users did not mind
    judge_fail_negative: int  # agree

    @property
    def n(self) -> int:
        return self.judge_pass_positive + self.judge_pass_negative + self.judge_fail_positive + self.judge_fail_negative

    @property
    def agreeing(self) -> int:
        return self.judge_pass_positive + self.judge_fail_negative

    @property
    def rate(self) -> float | None:
        return self.agreeing / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return proportion_interval(self.agreeing, self.n)


def agreement_table(pairs: list[tuple[str, bool]]) -> Agreement:
    """(judge verdict "pass"/"fail", feedback negative?) per trace → the table. Django-free, for tests and bench."""
    cells = {(v, n): 0 for v in ("pass", "fail") for n in (False, True)}
    for verdict, negative in pairs:
        cells[(verdict, negative)] += 1
    return Agreement(cells[("pass", False)], cells[("pass", True)], cells[("fail", False)], cells[("fail", True)])


def feedback_agreement(*, project: Project, check_ids: list[int], start: datetime | None = None) -> Agreement:
    """The table over the monitored checks' verdicts (one series: its promoted versions, newest verdict wins)
    on traces with polar feedback, optionally only traces that occurred from `start`."""
    verdicts = MonitorJudgment.objects.filter(project=project, monitored_check_id__in=check_ids).exclude(verdict="")
    if start is not None:
        verdicts = verdicts.filter(occurred_at__gte=start)
    verdicts = verdicts.filter(Exists(Feedback.objects.filter(trace=OuterRef("trace_id"), negative__isnull=False)))
    rows = verdicts.annotate(
        is_negative=Exists(Feedback.objects.filter(trace=OuterRef("trace_id"), negative=True))
    ).order_by("trace_id", "-created_at", "-id")
    latest: dict[int, tuple[str, bool]] = {}
    for trace_id, verdict, is_negative in rows.values_list("trace_id", "verdict", "is_negative"):
        latest.setdefault(trace_id, (verdict, is_negative))
    return agreement_table(list(latest.values()))


def negative_feedback_window(*, project: Project, days: int, now: datetime) -> FeedbackBucket:
    """The negative-feedback rate over the last `days` whole days plus today, as one bucket (the overview's line)."""
    buckets = negative_feedback_series(project=project, bucket="day", window=timedelta(days=days), now=now)
    polar, negative = sum(b.polar for b in buckets), sum(b.negative for b in buckets)
    return feedback_bucket(buckets[0].start, polar, negative)
