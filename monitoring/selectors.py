"""Reads for the monitoring pages: counts per bucket aggregated in SQL over (version, occurred_at)."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Trunc

from annotation.models import Project
from monitoring.models import (
    DEFAULT_SAMPLING_RATE,
    Alert,
    MonitorCursor,
    MonitoringSettings,
    MonitorJudgment,
    SampledTrace,
)

BANNER_COUNT_CAP = 50
# The series of a page is re-read at most this often: new verdicts arrive with the drain, once a minute.
SERIES_CACHE_SECONDS = 60
BACKLOG_COUNT_CAP = 10_000


def _counts() -> dict:
    return {
        "passes": Count("id", filter=Q(verdict="pass")),
        "fails": Count("id", filter=Q(verdict="fail")),
        "errors": Count("id", filter=Q(verdict="")),
    }


def bucket_counts(
    *, project: Project, version_id: int, start: datetime, end: datetime, bucket: str
) -> dict[datetime, tuple[int, int, int]]:
    """bucket start (UTC) → (passes, fails, errors) of the version's verdicts on traces that occurred in
    [start, end). One GROUP BY date_trunc over a range of monitor_judgment_series, cached for a minute (a month of
    daily buckets at a million traces is ~130,000 verdicts to count: ~150 ms)."""
    key = f"{project.cache_key('monitor-series')}:{version_id}:{bucket}:{start.timestamp():.0f}:{end.timestamp():.0f}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    rows = (
        MonitorJudgment.objects.filter(version_id=version_id, occurred_at__gte=start, occurred_at__lt=end)
        .annotate(bucket_start=Trunc("occurred_at", bucket, tzinfo=UTC))
        .values("bucket_start")
        .annotate(**_counts())
        .order_by("bucket_start")
    )
    counts = {row["bucket_start"]: (row["passes"], row["fails"], row["errors"]) for row in rows}
    cache.set(key, counts, SERIES_CACHE_SECONDS)
    return counts


def window_counts(*, version_id: int, start: datetime, end: datetime) -> tuple[int, int, int]:
    row = MonitorJudgment.objects.filter(version_id=version_id, occurred_at__gte=start, occurred_at__lt=end).aggregate(
        **_counts()
    )
    return row["passes"], row["fails"], row["errors"]


def failed_judgments(*, version_id: int, start: datetime, end: datetime) -> QuerySet[MonitorJudgment]:
    """The traces behind a bucket's failures: the version's fail verdicts on traces that occurred in it."""
    return (
        MonitorJudgment.objects.filter(
            version_id=version_id, occurred_at__gte=start, occurred_at__lt=end, verdict="fail"
        )
        .select_related("trace")
        .order_by("occurred_at", "id")
    )


def sampling_rate(*, project: Project) -> float:
    """The share of the project's new production traces that monitoring judges."""
    rate = MonitoringSettings.objects.filter(project=project).values_list("sampling_rate", flat=True).first()
    return DEFAULT_SAMPLING_RATE if rate is None else rate


def backlog(*, project: Project, version_id: int) -> int | None:
    """Sampled traces the version has not reached yet, counted up to a cap (None: the version never drained)."""
    cursor = MonitorCursor.objects.filter(version_id=version_id).first()
    if cursor is None:
        return None
    ids = SampledTrace.objects.filter(project=project, trace_id__gt=cursor.last_trace_id).values("trace_id")
    return SampledTrace.objects.filter(trace_id__in=ids[:BACKLOG_COUNT_CAP]).count()


def open_alerts(*, project: Project) -> QuerySet[Alert]:
    return Alert.objects.filter(project=project, resolved_at=None).select_related("criterion", "rule")


def open_alerts_banner(*, project: Project) -> dict | None:
    """What the banner on every project page shows: how many alerts are open (up to a cap) and the newest one.

    One query on the tiny partial index of open alerts (alert_open), on every page. Deliberately not cached: a
    cache miss on one request and a hit on the next would make a page's query count vary, which the query-count
    tests of other pages rely on; and the index answers in well under a millisecond at any number of traces.
    """
    alerts = list(
        Alert.objects.filter(project=project, resolved_at=None)
        .order_by("-opened_at", "-id")
        .values("id", "message")[: BANNER_COUNT_CAP + 1]
    )
    if not alerts:
        return None
    return {
        "count": len(alerts),
        "capped": len(alerts) > BANNER_COUNT_CAP,
        "id": alerts[0]["id"],
        "message": alerts[0]["message"],
    }
