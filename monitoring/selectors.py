"""Reads for the monitoring pages: counts per bucket aggregated in SQL over (version, occurred_at)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Trunc

from annotation.models import Criterion, Project, Trace
from judges.models import Promotion
from judges.promotions import current_promotions
from monitoring.models import Alert, AlertRule, MonitorCursor, MonitorJudgment, SamplingRate
from monitoring.sampling import PRODUCTION, RateHistory, is_sampled
from monitoring.series import (
    BUCKET_LENGTH,
    BucketStats,
    bucket_stats,
    evidence_matrix,
    sample_size_note,
    series,
    truncate,
)

BANNER_COUNT_CAP = 50
# The series of a page is re-read at most this often: new verdicts arrive with the drain, once a minute.
SERIES_CACHE_SECONDS = 60
# Production traces counted past a version's cursor for its backlog: 3 ms on the index; more is shown as "N+".
BACKLOG_SCAN_CAP = 10_000
# Production traces read per query while looking for the sampled ones.
SCAN_PAGE = 5000


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


def rate_history(*, project: Project) -> RateHistory:
    changes = SamplingRate.objects.filter(project=project).order_by("after_trace_id", "id")
    return RateHistory(list(changes.values_list("after_trace_id", "rate")))


def sampling_rate(*, project: Project) -> float:
    """The share of the project's new production traces that monitoring judges."""
    return rate_history(project=project).current


def sampled_after(*, project: Project, after_id: int, limit: int) -> tuple[list[int], int]:
    """Up to `limit` ids of sampled production traces after `after_id`, in id order, and how far the walk got: the
    id of the last production trace looked at (`after_id` when there was none). The walk reads the production
    traces a page at a time from the (project, source, id) index and keeps those the hash picks."""
    rates = rate_history(project=project)
    production = Trace.objects.filter(project=project, source=PRODUCTION).order_by("id")
    picked: list[int] = []
    upto = after_id
    while len(picked) < limit:
        page = list(production.filter(id__gt=upto).values_list("id", "external_id")[:SCAN_PAGE])
        for trace_id, external_id in page:
            upto = trace_id
            if is_sampled(source=PRODUCTION, external_id=external_id, rate=rates.rate_for(trace_id)):
                picked.append(trace_id)
                if len(picked) == limit:
                    break
        if len(page) < SCAN_PAGE:
            break
    return picked, upto


@dataclass(frozen=True)
class Backlog:
    """About how many sampled traces a promoted version has not reached yet: the production traces after its cursor
    times the current rate. `more` when there were more production traces than were counted."""

    about: int
    more: bool


def backlog(*, project: Project, version_id: int) -> Backlog | None:
    """The version's backlog (None: it never drained). An estimate from an index-only count of at most
    BACKLOG_SCAN_CAP production traces: the exact number would mean hashing each of them on every page view."""
    cursor = MonitorCursor.objects.filter(version_id=version_id).first()
    if cursor is None:
        return None
    waiting = Trace.objects.filter(project=project, source=PRODUCTION, id__gt=cursor.last_trace_id).values("id")
    counted = Trace.objects.filter(id__in=waiting[:BACKLOG_SCAN_CAP]).count()
    return Backlog(about=round(counted * sampling_rate(project=project)), more=counted == BACKLOG_SCAN_CAP)


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


# --- the monitoring pages ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionSummary:
    criterion: Criterion
    promotion: Promotion
    day: BucketStats  # the last 24 hours
    week: BucketStats  # the last 7 days
    backlog: Backlog | None
    open_alerts: list[Alert]


@dataclass(frozen=True)
class MonitoringSummary:
    summaries: list[CriterionSummary]  # the promoted criteria, in criterion order
    unmonitored: list[Criterion]  # the criteria without a promoted judge


def _window_stats(promotion: Promotion, start: datetime, end: datetime) -> BucketStats:
    passes, fails, errors = window_counts(version_id=promotion.version_id, start=start, end=end)
    return bucket_stats(
        start=start, end=end, passes=passes, fails=fails, errors=errors, matrix=evidence_matrix(promotion.report)
    )


def monitoring_summary(*, project: Project, now: datetime) -> MonitoringSummary:
    """Every promoted judge's pass rates over the last day and week up to `now`, its backlog and open alerts."""
    promotions = current_promotions(project=project)
    alerts_by_criterion: dict[int, list[Alert]] = {}
    for alert in open_alerts(project=project):
        alerts_by_criterion.setdefault(alert.criterion_id, []).append(alert)
    summaries = [
        CriterionSummary(
            criterion=promotion.criterion,
            promotion=promotion,
            day=_window_stats(promotion, now - timedelta(hours=24), now),
            week=_window_stats(promotion, now - timedelta(days=7), now),
            backlog=backlog(project=project, version_id=promotion.version_id),
            open_alerts=alerts_by_criterion.get(criterion_id, []),
        )
        for criterion_id, promotion in sorted(promotions.items(), key=lambda item: item[1].criterion.position)
    ]
    unmonitored = list(Criterion.objects.filter(project=project).exclude(pk__in=promotions.keys()).order_by("position"))
    return MonitoringSummary(summaries=summaries, unmonitored=unmonitored)


@dataclass(frozen=True)
class BucketRow:
    stats: BucketStats
    complete: bool  # the bucket has ended


@dataclass(frozen=True)
class CriterionSeries:
    stats: list[BucketStats]  # oldest first, the current bucket (in progress) last
    rows: list[BucketRow]  # newest first, for the table
    notes: list[str]  # what the sample sizes of the current and the previous bucket allow to say
    backlog: Backlog | None


# The words for the current and the previous bucket.
PERIOD_NAMES = {"hour": ("this hour", "last hour"), "day": ("today", "yesterday")}


def criterion_series(
    *, project: Project, promotion: Promotion, bucket: str, window: timedelta, now: datetime
) -> CriterionSeries:
    """The promoted version's pass rates per bucket over `window`, ending with the bucket in progress at `now`."""
    end = truncate(now, bucket) + BUCKET_LENGTH[bucket]  # the current bucket is shown, marked in progress
    start = end - window
    counts = bucket_counts(project=project, version_id=promotion.version_id, start=start, end=end, bucket=bucket)
    stats = series(counts=counts, start=start, end=end, bucket=bucket, matrix=evidence_matrix(promotion.report))
    current, previous = PERIOD_NAMES[bucket]
    notes = [sample_size_note(stats[-1], current), sample_size_note(stats[-2], previous)] if len(stats) > 1 else []
    return CriterionSeries(
        stats=stats,
        rows=[BucketRow(s, s.end <= now) for s in reversed(stats)],
        notes=notes,
        backlog=backlog(project=project, version_id=promotion.version_id),
    )


def alert_rules(*, criterion: Criterion) -> list[AlertRule]:
    return list(AlertRule.objects.filter(criterion=criterion))


def criterion_alerts(*, criterion: Criterion, limit: int) -> list[Alert]:
    """The criterion's latest alerts, open or resolved, newest first, with their rules."""
    return list(Alert.objects.filter(criterion=criterion).select_related("rule")[:limit])
