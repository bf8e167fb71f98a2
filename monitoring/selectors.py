"""Reads for the monitoring pages: counts per bucket aggregated in SQL over (check, occurred_at), and the walk
over production traces that picks what a check judges."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from django.core.cache import cache
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import Trunc

from annotation.models import Project, Trace
from judges.monitored import Check, Subject
from monitoring.checks import check_matrix, check_provider, check_rows, current_checks, unmonitored_subjects
from monitoring.models import (
    Alert,
    AlertRule,
    MonitorCursor,
    MonitoredCheck,
    MonitoredSeries,
    MonitorJudgment,
    SamplingRate,
    SeriesTraffic,
    series_path,
)
from monitoring.sampling import PRODUCTION, RateHistory, is_sampled, with_all_traffic
from monitoring.series import BUCKET_LENGTH, BucketStats, bucket_stats, sample_size_note, truncate
from monitoring.series import series as series_of

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
    *, project: Project, check_id: int, start: datetime, end: datetime, bucket: str
) -> dict[datetime, tuple[int, int, int]]:
    """bucket start (UTC) → (passes, fails, errors) of the check's verdicts on traces that occurred in
    [start, end). One GROUP BY date_trunc over a range of monitor_judgment_series, cached for a minute (a month of
    daily buckets at a million traces is ~130,000 verdicts to count: ~150 ms)."""
    key = f"{project.cache_key('monitor-series')}:{check_id}:{bucket}:{start.timestamp():.0f}:{end.timestamp():.0f}"
    cached = cache.get(key)
    if cached is not None:
        return cached
    rows = (
        MonitorJudgment.objects.filter(monitored_check_id=check_id, occurred_at__gte=start, occurred_at__lt=end)
        .annotate(bucket_start=Trunc("occurred_at", bucket, tzinfo=UTC))
        .values("bucket_start")
        .annotate(**_counts())
        .order_by("bucket_start")
    )
    counts = {row["bucket_start"]: (row["passes"], row["fails"], row["errors"]) for row in rows}
    cache.set(key, counts, SERIES_CACHE_SECONDS)
    return counts


def window_counts(*, check_id: int | None, start: datetime, end: datetime) -> tuple[int, int, int]:
    """(passes, fails, errors) of the check's verdicts on traces that occurred in [start, end); a check with no
    stored row (never drained, `check_id` None) has none."""
    if check_id is None:
        return 0, 0, 0
    row = MonitorJudgment.objects.filter(
        monitored_check_id=check_id, occurred_at__gte=start, occurred_at__lt=end
    ).aggregate(**_counts())
    return row["passes"], row["fails"], row["errors"]


def failed_judgments(*, check_id: int, start: datetime, end: datetime) -> QuerySet[MonitorJudgment]:
    """The traces behind a bucket's failures: the check's fail verdicts on traces that occurred in it."""
    return (
        MonitorJudgment.objects.filter(
            monitored_check_id=check_id, occurred_at__gte=start, occurred_at__lt=end, verdict="fail"
        )
        .select_related("trace")
        .order_by("occurred_at", "id")
    )


def rate_history(*, project: Project) -> RateHistory:
    changes = SamplingRate.objects.filter(project=project).order_by("after_trace_id", "id")
    return RateHistory(list(changes.values_list("after_trace_id", "rate")))


def sampling_rate(*, project: Project) -> float:
    """The share of the project's new production traces that monitoring judges (unless a series judges all)."""
    return rate_history(project=project).current


def traffic_history(*, series: MonitoredSeries | None) -> list[tuple[int, bool]]:
    """(after_trace_id, all_traffic) of every change of the series' traffic setting, in order."""
    if series is None:
        return []
    changes = SeriesTraffic.objects.filter(series=series).order_by("after_trace_id", "id")
    return list(changes.values_list("after_trace_id", "all_traffic"))


def check_rates(*, project: Project, series: MonitoredSeries | None, check: Check) -> RateHistory:
    """The rate at which the check judges each production trace: the project's sampling rate, or 1 where its
    series judges all traffic and the check runs here without paying anyone."""
    rates = rate_history(project=project)
    return with_all_traffic(rates, traffic_history(series=series)) if check.local else rates


@dataclass(frozen=True)
class Coverage:
    """Which production traffic a series' check judges now, for the pages."""

    all_traffic: bool  # in force: every production trace the check is for
    requested: bool  # the series is set to all traffic (in force only for a check that runs here for free)
    rate: float  # the project's sampling rate
    scope: str  # the traces the check is for, in words ("production traces")

    @property
    def judged_share(self) -> float:
        """The share of new production traffic the check judges."""
        return 1.0 if self.all_traffic else self.rate

    @property
    def sample(self) -> str:
        return f"{self.rate * 100:g}% sample"

    @property
    def short(self) -> str:
        """Either "all production traffic" or "15% sample"."""
        return "all production traffic" if self.all_traffic else self.sample

    @property
    def text(self) -> str:
        """Either "all production traces" or "a 15% sample of production traces"."""
        return f"all {self.scope}" if self.all_traffic else f"a {self.sample} of {self.scope}"


def coverage(*, series: MonitoredSeries | None, check: Check | None, rate: float) -> Coverage:
    history = traffic_history(series=series)
    requested = bool(history) and history[-1][1]
    local = check is not None and check.local
    scope = check.scope if check is not None else "production traces"
    return Coverage(all_traffic=requested and local, requested=requested, rate=rate, scope=scope)


def sampled_after(
    *,
    project: Project,
    after_id: int,
    limit: int,
    rates: RateHistory | None = None,
    traces: QuerySet[Trace] | None = None,
) -> tuple[list[int], int]:
    """Up to `limit` ids of sampled production traces after `after_id`, in id order, and how far the walk got: the
    id of the last production trace looked at (`after_id` when there was none). The walk reads the production
    traces a page at a time from the (project, source, id) index and keeps those the hash picks under `rates` (the
    project's rate history unless given; a check's own with `check_rates`). `traces` narrows the production traces
    to those a check is for (its provider's `covers`)."""
    rates = rates or rate_history(project=project)
    if traces is None:
        traces = Trace.objects.filter(project=project, source=PRODUCTION)
    production = traces.order_by("id")
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


def production_traces(*, project: Project, check: Check) -> QuerySet[Trace]:
    """The project's production traces that the check is for."""
    production = Trace.objects.filter(project=project, source=PRODUCTION)
    return check_provider(check).covers(check, production)


@dataclass(frozen=True)
class Backlog:
    """About how many traces a check has not reached yet: the production traces after its cursor times the rate
    it judges new traffic at. `more` when there were more production traces than were counted."""

    about: int
    more: bool


def backlog(*, project: Project, check_id: int | None, check: Check, rate: float) -> Backlog | None:
    """The check's backlog (None: it never drained). An estimate from an index-only count of at most
    BACKLOG_SCAN_CAP production traces: the exact number would mean hashing each of them on every page view.
    `rate` is the share of new traffic it judges (1 when it judges all)."""
    cursor = MonitorCursor.objects.filter(monitored_check_id=check_id).first() if check_id is not None else None
    if cursor is None:
        return None
    waiting = production_traces(project=project, check=check).filter(id__gt=cursor.last_trace_id).values("id")
    counted = Trace.objects.filter(id__in=waiting[:BACKLOG_SCAN_CAP]).count()
    return Backlog(about=round(counted * rate), more=counted == BACKLOG_SCAN_CAP)


def open_alerts(*, project: Project) -> QuerySet[Alert]:
    return Alert.objects.filter(project=project, resolved_at=None).select_related("series", "rule")


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
class SeriesSummary:
    series: MonitoredSeries | None  # None until the check first drains (or a rule or setting is saved)
    check: Check
    coverage: Coverage
    day: BucketStats  # the last 24 hours
    week: BucketStats  # the last 7 days
    backlog: Backlog | None
    open_alerts: list[Alert]
    url: str


@dataclass(frozen=True)
class MonitoringSummary:
    summaries: list[SeriesSummary]  # every current check, providers in registration order
    unmonitored: list[Subject]  # the subjects nothing monitors now (criteria without a promoted judge, ...)


def series_url(*, project: Project, subject: Subject) -> str:
    return series_path(project.slug, subject.provider, subject.subject_id, subject.criterion_id)


def stats_for(*, check: Check | None, start: datetime, end: datetime, counts: tuple[int, int, int]) -> BucketStats:
    passes, fails, errors = counts
    stats = bucket_stats(start=start, end=end, passes=passes, fails=fails, errors=errors, matrix=check_matrix(check))
    return explain_missing(stats, check)


def explain_missing(stats: BucketStats, check: Check | None) -> BucketStats:
    """A check with no evidence says why in its own words (an outcome grader has no labels to correct by)."""
    if check is not None and check.evidence is None and check.no_evidence and stats.judged:
        return replace(stats, corrected_missing=check.no_evidence)
    return stats


def monitoring_summary(*, project: Project, now: datetime) -> MonitoringSummary:
    """Every current check's pass rates over the last day and week up to `now`, its backlog and open alerts."""
    checks = current_checks(project=project)
    rows = check_rows(project=project, checks=checks)
    series_by_subject = {
        (s.provider, s.subject_id): s for s in MonitoredSeries.objects.filter(project=project).select_related("project")
    }
    alerts_by_series: dict[int, list[Alert]] = {}
    for alert in open_alerts(project=project):
        alerts_by_series.setdefault(alert.series_id, []).append(alert)
    rate = sampling_rate(project=project)
    summaries = []
    for check in checks:
        series = series_by_subject.get((check.provider, check.subject_id))
        row = rows.get((check.provider, check.key))
        row_id = row.pk if row else None
        covered = coverage(series=series, check=check, rate=rate)
        summaries.append(
            SeriesSummary(
                series=series,
                check=check,
                coverage=covered,
                day=_window(check, row_id, now - timedelta(hours=24), now),
                week=_window(check, row_id, now - timedelta(days=7), now),
                backlog=backlog(project=project, check_id=row_id, check=check, rate=covered.judged_share),
                open_alerts=alerts_by_series.get(series.pk, []) if series else [],
                url=series_url(project=project, subject=check.subject),
            )
        )
    return MonitoringSummary(summaries=summaries, unmonitored=unmonitored_subjects(project=project, checks=checks))


def _window(check: Check, check_id: int | None, start: datetime, end: datetime) -> BucketStats:
    return stats_for(check=check, start=start, end=end, counts=window_counts(check_id=check_id, start=start, end=end))


@dataclass(frozen=True)
class BucketRow:
    stats: BucketStats
    complete: bool  # the bucket has ended


@dataclass(frozen=True)
class SeriesStats:
    stats: list[BucketStats]  # oldest first, the current bucket (in progress) last
    rows: list[BucketRow]  # newest first, for the table
    notes: list[str]  # what the sample sizes of the current and the previous bucket allow to say
    backlog: Backlog | None


# The words for the current and the previous bucket.
PERIOD_NAMES = {"hour": ("this hour", "last hour"), "day": ("today", "yesterday")}


def series_stats(
    *,
    project: Project,
    check: Check,
    series: MonitoredSeries | None,
    covered: Coverage,
    bucket: str,
    window: timedelta,
    now: datetime,
) -> SeriesStats:
    """The check's pass rates per bucket over `window`, ending with the bucket in progress at `now`; `covered` is
    which traffic it judges (`coverage`), for its backlog."""
    end = truncate(now, bucket) + BUCKET_LENGTH[bucket]  # the current bucket is shown, marked in progress
    start = end - window
    row = (
        MonitoredCheck.objects.filter(series=series, key=check.key).values_list("pk", flat=True).first()
        if series
        else None
    )
    counts = bucket_counts(project=project, check_id=row, start=start, end=end, bucket=bucket) if row else {}
    stats = [
        explain_missing(s, check)
        for s in series_of(counts=counts, start=start, end=end, bucket=bucket, matrix=check_matrix(check))
    ]
    current, previous = PERIOD_NAMES[bucket]
    notes = [sample_size_note(stats[-1], current), sample_size_note(stats[-2], previous)] if len(stats) > 1 else []
    return SeriesStats(
        stats=stats,
        rows=[BucketRow(s, s.end <= now) for s in reversed(stats)],
        notes=notes,
        backlog=backlog(project=project, check_id=row, check=check, rate=covered.judged_share),
    )


def alert_rules(*, series: MonitoredSeries | None) -> list[AlertRule]:
    return list(AlertRule.objects.filter(series=series)) if series is not None else []


def series_alerts(*, series: MonitoredSeries | None, limit: int) -> list[Alert]:
    """The series' latest alerts, open or resolved, newest first, with their rules."""
    if series is None:
        return []
    return list(Alert.objects.filter(series=series).select_related("rule")[:limit])
