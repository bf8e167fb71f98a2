"""Judging production traffic: every current check (monitoring.checks: a promoted judge version, an outcome grader
promoted into monitoring) works through its project's production traces.

Ingestion announces every batch it stores (annotation.signals.traces_stored); a batch with production traces kicks
a drain after commit (`drain_kick`), and Celery beat drains every minute anyway, so a kick that is lost (broker
down, no worker) only delays the verdicts. Which traces a check judges follows from their ids, the rate history
and its series' traffic setting (monitoring.sampling); nothing is written at ingestion. Verdicts are
MonitorJudgment rows, one per (check, trace). Each check walks the production traces in id order behind a
MonitorCursor, judging the sampled ones (or all of them); see its docstring for how concurrent drains share the
work without judging a trace twice.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max, TextChoices
from django.utils import timezone

from annotation.models import Criterion, Project, Trace
from annotation.services import DomainError
from annotation.signals import StoredBatch
from core import outbound
from core.queue import task_send_now
from judges.kinds import TRACE_INPUT_FIELDS, trace_input
from judges.models import MAX_REASONING_CHARS
from judges.monitored import Check, CheckScorer, Subject, provider, providers
from monitoring.checks import check_provider, criterion_subject, current_checks
from monitoring.models import (
    Alert,
    AlertRule,
    Bucket,
    MonitorCursor,
    MonitoredCheck,
    MonitoredSeries,
    MonitorJudgment,
    SamplingRate,
    SeriesTraffic,
    new_webhook_secret,
)
from monitoring.sampling import PRODUCTION
from monitoring.selectors import check_rates, production_traces, sampled_after

logger = logging.getLogger(__name__)
# One kick per project per this many seconds: an API client posting many small batches must not queue a drain for
# each; the one queued covers them all (a drain takes everything sampled so far).
KICK_COALESCE_SECONDS = 5
DRAIN_TASK = "monitoring.tasks.monitor_drain_task"
BUSY = -1


def stored_traces_kick(*, batch: StoredBatch) -> bool:
    """The receiver of annotation.signals.traces_stored: a batch with production traces in it queues a drain
    after commit, so their sampled part is judged within seconds. Nothing is written: whether a trace is sampled
    follows from its id, source and the rate history (monitoring.sampling). Returns whether a drain was kicked."""
    if PRODUCTION not in batch.sources:
        return False
    # After commit, and never an error or a wait here: the beat schedule drains whatever a kick misses.
    drain_kick(project=batch.project)
    return True


def drain_kick(*, project: Project) -> None:
    """Queue a drain of the project's sample once the current transaction commits. Never raises and never waits
    on a broker that is down: ingestion must work without one (the beat schedule drains the backlog later)."""

    def send() -> None:
        # With the cache down `add` says yes (core.cache): coalescing is skipped and each batch kicks, which a
        # drain's lease makes harmless; with the broker down too, the kick fails at once and beat drains later.
        if not cache.add(project.cache_key("monitor-kick"), 1, timeout=KICK_COALESCE_SECONDS):
            return
        if not task_send_now(DRAIN_TASK, project.pk):
            logger.warning("Could not queue a monitoring drain of %s; beat drains it later", project.slug)

    transaction.on_commit(send)


def _start_after(*, project: Project, now) -> int:
    """Where a check that never drained starts: just before the first production trace that arrived within the
    backfill window, or after the last production trace when none did (so a new promotion does not judge years of
    history at LLM prices)."""
    since = now - timedelta(hours=settings.EVALSTUDIO_MONITOR_BACKFILL_HOURS)
    production = Trace.objects.filter(project=project, source=PRODUCTION)
    first = production.filter(created_at__gte=since).order_by("id").values_list("id", flat=True).first()
    if first is not None:
        return first - 1
    return production.aggregate(last=Max("id"))["last"] or 0


def series_get_or_create(*, project: Project, subject: Subject) -> MonitoredSeries:
    """The subject's series row, made when first needed (a drain, a rule, a traffic setting); its name follows
    the subject's."""
    series, created = MonitoredSeries.objects.get_or_create(
        provider=subject.provider,
        subject_id=subject.subject_id,
        defaults={"project": project, "name": subject.name, "criterion_id": subject.criterion_id},
    )
    if series.project_id != project.pk:
        raise DomainError(f"{subject.provider} {subject.subject_id} belongs to another project than {project.slug}")
    if not created and series.name != subject.name:
        series.name = subject.name
        series.save(update_fields=["name"])
    series.project = project
    return series


def series_for_criterion(*, criterion: Criterion) -> MonitoredSeries:
    """A criterion's series (what its monitoring page shows and its alert rules watch), made when first needed."""
    return series_get_or_create(project=criterion.project, subject=criterion_subject(criterion, criterion.project))


def check_get_or_create(*, project: Project, check: Check) -> MonitoredCheck:
    """The check's row (its cursor and verdicts hang on it), made when it first drains."""
    series = series_get_or_create(project=project, subject=check.subject)
    row, _ = MonitoredCheck.objects.get_or_create(series=series, key=check.key, defaults={"label": check.label})
    row.series = series
    return row


def _cursor(*, project: Project, row: MonitoredCheck) -> MonitorCursor:
    cursor = MonitorCursor.objects.filter(monitored_check=row).first()
    if cursor is not None:
        return cursor
    start = _start_after(project=project, now=timezone.now())
    cursor, _ = MonitorCursor.objects.get_or_create(
        monitored_check=row, defaults={"project": project, "last_trace_id": start}
    )
    return cursor


def drain_chunk(
    *, project: Project, check: Check, score: CheckScorer | None = None, chunk_size: int | None = None
) -> int:
    """Judge the check's next chunk of production traces (the sampled ones, or all of them when its series judges
    all traffic and it runs here for free); returns how many traces the chunk held, 0 when there is nothing to
    judge, BUSY when another drain holds the check's lease."""
    row = check_get_or_create(project=project, check=check)
    size = chunk_size or check.chunk_size
    token = secrets.token_hex(16)
    cursor = _cursor(project=project, row=row)
    rates = check_rates(project=project, series=row.series, check=check)
    traces = production_traces(project=project, check=check)
    with transaction.atomic():
        cursor = MonitorCursor.objects.select_for_update().get(pk=cursor.pk)
        now = timezone.now()
        if cursor.lease_until is not None and cursor.lease_until > now:
            return BUSY
        ids, upto = sampled_after(
            project=project, after_id=cursor.last_trace_id, limit=size, rates=rates, traces=traces
        )
        if not ids:
            if upto > cursor.last_trace_id:  # production traces that are not in the sample: walked past
                cursor.last_trace_id, cursor.updated_at = upto, now
                cursor.save(update_fields=["last_trace_id", "updated_at"])
            return 0
        cursor.lease_token, cursor.lease_until, cursor.claimed_upto = token, now + _lease(), upto
        cursor.updated_at = now
        cursor.save(update_fields=["lease_token", "lease_until", "claimed_upto", "updated_at"])
    try:
        # A drain whose lease expired mid-chunk may have written some of these already.
        done = set(
            MonitorJudgment.objects.filter(monitored_check=row, trace_id__in=ids).values_list("trace_id", flat=True)
        )
        loaded = list(
            Trace.objects.filter(pk__in=[i for i in ids if i not in done]).only(*TRACE_INPUT_FIELDS, "occurred_at")
        )
        score = score or check_provider(check).scorer(check)
        outcomes = score([trace_input(trace) for trace in loaded]) if loaded else []
    except Exception:
        # Give the chunk back at once rather than when the lease runs out; the next drain tries again.
        MonitorCursor.objects.filter(pk=cursor.pk, lease_token=token).update(lease_token="", lease_until=None)
        raise
    rows = [
        MonitorJudgment(
            project=project,
            monitored_check=row,
            trace_id=trace.pk,
            occurred_at=trace.occurred_at,
            verdict=outcome.verdict,
            reasoning=outcome.reasoning[:MAX_REASONING_CHARS],
            error=outcome.error,
            latency_ms=outcome.latency_ms,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            cost_usd=outcome.cost_usd,
        )
        for trace, outcome in zip(loaded, outcomes, strict=True)
        # A trace its check skipped (a reference judge's trace without a reference) is walked past unrecorded: it is
        # neither a pass, a fail nor an error of the series.
        if not outcome.skipped
    ]
    with transaction.atomic():
        MonitorJudgment.objects.bulk_create(rows, ignore_conflicts=True)
        # Only the lease holder moves the cursor: if the lease expired and another drain re-claimed the chunk,
        # that drain advances it (its rows for these traces are ignored as conflicts).
        MonitorCursor.objects.filter(pk=cursor.pk, lease_token=token).update(
            last_trace_id=upto, lease_token="", lease_until=None, claimed_upto=None, updated_at=timezone.now()
        )
    return len(ids)


def _lease() -> timedelta:
    return timedelta(seconds=settings.EVALSTUDIO_MONITOR_LEASE_SECONDS)


def monitoring_drain(*, project: Project, budget_seconds: float | None = None) -> int:
    """Judge the project's production traffic with every current check until none has anything left or the time
    budget is spent; returns how many traces were judged. A check that cannot judge new traces (an external
    judge) is skipped."""
    budget = settings.EVALSTUDIO_MONITOR_DRAIN_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    judged = 0
    for check in current_checks(project=project):
        if check.cannot_judge:
            continue
        score = None
        while time.monotonic() < deadline:
            if score is None:
                score = check_provider(check).scorer(check)
            done = drain_chunk(project=project, check=check, score=score)
            if done <= 0:
                break
            judged += done
    return judged


def projects_to_drain() -> list[int]:
    """Projects with at least one current check, of any provider."""
    return sorted({project_id for p in providers() for project_id in p.project_ids()})


def sampling_rate_set(*, project: Project, rate: float, user: AbstractBaseUser | None = None) -> SamplingRate:
    """Change the share of production traces that monitoring judges, for the traces stored from now on; traces
    already stored keep whether they were sampled."""
    if not (math.isfinite(rate) and 0 <= rate <= 1):
        raise DomainError(f"The sampling rate of {project.slug} must be between 0% and 100%, got {rate:.0%}.")
    # Trace ids only grow: whatever is stored after this has a larger id than any trace there is now.
    last = Trace.objects.aggregate(last=Max("id"))["last"] or 0
    return SamplingRate.objects.create(project=project, rate=rate, after_trace_id=last, set_by=user)


@transaction.atomic
def series_traffic_set(
    *, series: MonitoredSeries, all_traffic: bool, user: AbstractBaseUser | None = None
) -> SeriesTraffic:
    """Judge the series on all production traffic (or back on the sample), for the traces stored from now on;
    traces already stored keep whether they were judged. In force only while the series' check runs here without
    paying anyone (an assertion or classifier judge, an outcome grader): an LLM judge judges the sample."""
    MonitoredSeries.objects.select_for_update().filter(pk=series.pk).first()
    current = SeriesTraffic.objects.filter(series=series).order_by("-after_trace_id", "-id").first()
    if current is not None and current.all_traffic == all_traffic:
        return current
    # Trace ids only grow: whatever is stored after this has a larger id than any trace there is now.
    last = Trace.objects.aggregate(last=Max("id"))["last"] or 0
    return SeriesTraffic.objects.create(series=series, all_traffic=all_traffic, after_trace_id=last, set_by=user)


# --- alert rules ---------------------------------------------------------------------------------------------------


def _check_choice(name: str, value: str, choices: type[TextChoices]) -> None:
    if value not in choices.values:
        raise DomainError(f"{name}: expected one of {', '.join(choices.values)}, got {value!r}")


@transaction.atomic
def alert_rule_create(
    *,
    series: MonitoredSeries,
    threshold: float,
    metric: str = AlertRule.Metric.OBSERVED,
    bound: str = AlertRule.Bound.UPPER,
    side: str = AlertRule.Side.BELOW,
    bucket: str = Bucket.HOUR,
    min_sample: int = 20,
    webhook_url: str = "",
    enabled: bool = True,
    user: AbstractBaseUser | None = None,
) -> AlertRule:
    """A rule on the series' pass rate; `threshold` is a fraction. DomainError names a bad value."""
    if not 0 <= threshold <= 1:
        raise DomainError(f"threshold: a pass rate from 0% to 100%, got {threshold:.0%}")
    _check_choice("metric", metric, AlertRule.Metric)
    owner = provider(series.provider)
    if metric == AlertRule.Metric.CORRECTED and owner is not None and not owner.corrects:
        raise DomainError(
            f"metric: {series.name} has no corrected pass rate (its check has no expert labels to correct by); "
            "use the observed pass rate"
        )
    _check_choice("bound", bound, AlertRule.Bound)
    _check_choice("side", side, AlertRule.Side)
    _check_choice("bucket", bucket, Bucket)
    if min_sample < 0:
        raise DomainError(f"min_sample: a number of judged traces, got {min_sample}")
    if webhook_url and not webhook_url.lower().startswith(("http://", "https://")):
        raise DomainError("webhook_url: the webhook must be an http:// or https:// URL")
    refusal = outbound.url_refusal(webhook_url) if webhook_url else None
    if refusal:
        raise DomainError(f"webhook_url: the webhook is refused: {refusal}")
    return AlertRule.objects.create(
        project_id=series.project_id,
        series=series,
        threshold=threshold,
        metric=metric,
        bound=bound,
        side=side,
        bucket=bucket,
        min_sample=min_sample,
        webhook_url=webhook_url,
        enabled=enabled,
        created_by=user,
    )


@transaction.atomic
def alert_rule_enable(*, rule: AlertRule, enabled: bool) -> AlertRule:
    """Switch a rule on or off. Off resolves its open alert, since nobody watches it any more, and its state
    starts from OK when it is switched on again."""
    if not enabled:
        Alert.objects.filter(rule=rule, resolved_at=None).update(resolved_at=timezone.now())
        rule.state = AlertRule.State.OK
    rule.enabled = enabled
    rule.save(update_fields=["enabled", "state"])
    return rule


@transaction.atomic
def alert_rule_rotate_secret(*, rule: AlertRule) -> AlertRule:
    """A new signing secret for the rule's webhook; deliveries from now on are signed with it (the old one stops
    verifying at once, so the receiver is updated first or accepts both for a while)."""
    rule.webhook_secret = new_webhook_secret()
    rule.save(update_fields=["webhook_secret"])
    return rule


@transaction.atomic
def alert_rule_delete(*, rule: AlertRule) -> None:
    """Delete a rule, resolving its open alert first; its past alerts go with it."""
    Alert.objects.filter(rule=rule, resolved_at=None).update(resolved_at=timezone.now())
    rule.delete()
