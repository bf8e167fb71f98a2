"""Picking and judging the production sample: every promoted judge version works through its project's sampled traces.

Ingestion announces every batch it stores (annotation.signals.traces_stored); `stored_traces_sample` picks the
production traces whose id hashes under the project's rate (SampledTrace rows, in the batch's transaction) and kicks
a drain after commit (`drain_kick`); Celery beat drains every minute anyway, so a kick that is lost (broker down,
no worker) only delays the verdicts. Verdicts are
MonitorJudgment rows, one per (version, trace). Each version walks the sampled traces in id order behind a
MonitorCursor; see its docstring for how concurrent drains share the work without judging a trace twice.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from annotation.models import Project, Trace
from annotation.selectors import trace_ids
from annotation.services import DomainError
from annotation.signals import StoredBatch
from judges.models import Judge, JudgeVersion, Promotion
from judges.promotions import current_promotions
from judges.providers import llm
from judges.services import MAX_REASONING_CHARS, Scorer, trace_input, version_scorer
from judges.services import chunk_size as judge_chunk_size
from monitoring.models import MonitorCursor, MonitoringSettings, MonitorJudgment, SampledTrace
from monitoring.sampling import PRODUCTION, is_sampled
from monitoring.selectors import sampling_rate

logger = logging.getLogger(__name__)
# One kick per project per this many seconds: an API client posting many small batches must not queue a drain for
# each; the one queued covers them all (a drain takes everything sampled so far).
KICK_COALESCE_SECONDS = 5
BUSY = -1


def stored_traces_sample(*, batch: StoredBatch) -> int:
    """Pick the traces of a batch that ingestion just stored for monitoring; returns how many were picked.

    Runs in the batch's transaction (the receiver of annotation.signals.traces_stored). A trace is decided once,
    when it arrives as production: re-sending it keeps the decision (a rate change applies to new traces only);
    a change of source decides again, and a trace that is no longer production leaves the sample.
    """
    changed = batch.source_changed
    decide = [
        (external_id, source) for external_id, source, created in batch.rows() if created or external_id in changed
    ]
    left = [external_id for external_id, source in decide if external_id in changed and source != PRODUCTION]
    if left:
        SampledTrace.objects.filter(trace_id__in=_ids(batch, left).values()).delete()
    if not any(source == PRODUCTION for _, source in decide):
        return 0  # most batches outside production: no rate to read, nothing to hash
    rate = sampling_rate(project=batch.project)
    picked = [
        external_id for external_id, source in decide if is_sampled(source=source, external_id=external_id, rate=rate)
    ]
    if picked:
        now = timezone.now()
        rows = [SampledTrace(trace_id=i, project=batch.project, sampled_at=now) for i in _ids(batch, picked).values()]
        SampledTrace.objects.bulk_create(rows, ignore_conflicts=True)
        # After commit, and never an error or a wait here: the beat schedule drains whatever a kick misses.
        drain_kick(project=batch.project)
    return len(picked)


def _ids(batch: StoredBatch, external_ids: list[str]) -> dict[str, int]:
    """Trace ids of some of the batch's traces: those the writer knew, the others looked up."""
    known = {external_id: batch.ids[external_id] for external_id in external_ids if external_id in batch.ids}
    missing = [external_id for external_id in external_ids if external_id not in known]
    if missing:
        known.update(trace_ids(project_id=batch.project.pk, external_ids=missing))
    return known


def drain_kick(*, project: Project) -> None:
    """Queue a drain of the project's sample once the current transaction commits. Never raises and never waits
    on a broker that is down: ingestion must work without one (the beat schedule drains the backlog later)."""

    def send() -> None:
        try:
            if not cache.add(project.cache_key("monitor-kick"), 1, timeout=KICK_COALESCE_SECONDS):
                return
            from monitoring.tasks import monitor_drain_task

            # retry=False: a refused connection fails at once instead of retrying while the import waits.
            monitor_drain_task.apply_async(args=[project.pk], retry=False)
        except Exception as exc:
            logger.warning("Could not queue a monitoring drain of %s (%s); beat drains it later", project.slug, exc)

    transaction.on_commit(send)


def _start_after(*, project: Project, now) -> int:
    """Where a version that never drained starts: just before the first sampled trace that arrived within the
    backfill window, or after the last sampled trace when none did (so a new promotion does not judge years of
    history at LLM prices)."""
    since = now - timedelta(hours=settings.EVALSTUDIO_MONITOR_BACKFILL_HOURS)
    sampled = SampledTrace.objects.filter(project=project)
    first = sampled.filter(sampled_at__gte=since).order_by("trace_id").values_list("trace_id", flat=True).first()
    if first is not None:
        return first - 1
    return sampled.aggregate(last=Max("trace_id"))["last"] or 0


def _cursor(*, project: Project, version: JudgeVersion) -> MonitorCursor:
    cursor = MonitorCursor.objects.filter(version=version).first()
    if cursor is not None:
        return cursor
    start = _start_after(project=project, now=timezone.now())
    cursor, _ = MonitorCursor.objects.get_or_create(
        version=version, defaults={"project": project, "last_trace_id": start}
    )
    return cursor


def drain_chunk(*, promotion: Promotion, score: Scorer | None = None, chunk_size: int | None = None) -> int:
    """Judge the promoted version's next chunk of sampled traces; returns how many traces the chunk held, 0 when
    there is nothing to judge, BUSY when another drain holds the version's lease."""
    version = promotion.version
    project = promotion.criterion.project
    size = chunk_size or judge_chunk_size(version)
    token = secrets.token_hex(16)
    cursor = _cursor(project=project, version=version)
    with transaction.atomic():
        cursor = MonitorCursor.objects.select_for_update().get(pk=cursor.pk)
        now = timezone.now()
        if cursor.lease_until is not None and cursor.lease_until > now:
            return BUSY
        ids = list(
            SampledTrace.objects.filter(project=project, trace_id__gt=cursor.last_trace_id)
            .order_by("trace_id")
            .values_list("trace_id", flat=True)[:size]
        )
        if not ids:
            return 0
        cursor.lease_token, cursor.lease_until, cursor.claimed_upto = token, now + _lease(), ids[-1]
        cursor.updated_at = now
        cursor.save(update_fields=["lease_token", "lease_until", "claimed_upto", "updated_at"])
    try:
        # A drain whose lease expired mid-chunk may have written some of these already.
        done = set(MonitorJudgment.objects.filter(version=version, trace_id__in=ids).values_list("trace_id", flat=True))
        traces = list(
            Trace.objects.filter(pk__in=[i for i in ids if i not in done]).only(
                "id", "external_id", "input", "output", "messages", "context", "metadata", "occurred_at"
            )
        )
        outcomes = (score or version_scorer(version))([trace_input(trace) for trace in traces]) if traces else []
    except Exception:
        # Give the chunk back at once rather than when the lease runs out; the next drain tries again.
        MonitorCursor.objects.filter(pk=cursor.pk, lease_token=token).update(lease_token="", lease_until=None)
        raise
    config = version.config
    rows = [
        MonitorJudgment(
            project=project,
            criterion_id=promotion.criterion_id,
            version=version,
            trace_id=trace.pk,
            occurred_at=trace.occurred_at,
            verdict=outcome.verdict,
            reasoning=outcome.reasoning[:MAX_REASONING_CHARS],
            error=outcome.error,
            latency_ms=outcome.latency_ms,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            cost_usd=llm.cost(config, outcome.prompt_tokens or 0, outcome.completion_tokens or 0)
            if outcome.prompt_tokens is not None
            else None,
        )
        for trace, outcome in zip(traces, outcomes, strict=True)
    ]
    with transaction.atomic():
        MonitorJudgment.objects.bulk_create(rows, ignore_conflicts=True)
        # Only the lease holder moves the cursor: if the lease expired and another drain re-claimed the chunk,
        # that drain advances it (its rows for these traces are ignored as conflicts).
        MonitorCursor.objects.filter(pk=cursor.pk, lease_token=token).update(
            last_trace_id=ids[-1], lease_token="", lease_until=None, claimed_upto=None, updated_at=timezone.now()
        )
    return len(ids)


def _lease() -> timedelta:
    return timedelta(seconds=settings.EVALSTUDIO_MONITOR_LEASE_SECONDS)


def monitoring_drain(*, project: Project, budget_seconds: float | None = None) -> int:
    """Judge the project's sampled traces with every promoted version until none is left or the time budget is
    spent; returns how many traces were judged. External judges cannot judge new traces and are skipped."""
    budget = settings.EVALSTUDIO_MONITOR_DRAIN_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    deadline = time.monotonic() + budget
    judged = 0
    for promotion in current_promotions(project=project).values():
        if promotion.version.judge.kind == Judge.Kind.EXTERNAL:
            continue
        score = None
        while time.monotonic() < deadline:
            if score is None:
                score = version_scorer(promotion.version)
            done = drain_chunk(promotion=promotion, score=score)
            if done <= 0:
                break
            judged += done
    return judged


def projects_to_drain() -> list[int]:
    """Projects with at least one current promotion."""
    return list(
        Promotion.objects.filter(ended_at=None).values_list("criterion__project_id", flat=True).distinct().order_by()
    )


def sampling_rate_set(*, project: Project, rate: float) -> MonitoringSettings:
    """Change the share of new production traces that monitoring judges; traces already stored keep their sample."""
    if not 0 <= rate <= 1:
        raise DomainError(f"The sampling rate of {project.slug} must be between 0% and 100%, got {rate:.0%}.")
    settings_row, _ = MonitoringSettings.objects.update_or_create(project=project, defaults={"sampling_rate": rate})
    return settings_row
