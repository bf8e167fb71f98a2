"""Celery tasks for judges: thin wrappers that load a run and call the services.

A run fans out: `judge_run_task` claims it and queues one `judge_run_chunk_task` per chunk of traces; whichever
chunk writes the last judgment writes the report. Every task is safe to run twice (conditional claim, unique
judgments), and a worker that starts queues again the runs whose worker died mid-way (a stale heartbeat).
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from evalstudio.celery import resume_when_a_worker_starts
from judges.models import JudgeRun
from judges.services import claimable_runs, judge_run_chunk, judge_run_maybe_finish, judge_run_plan


def _load(run_id: int) -> JudgeRun | None:
    return JudgeRun.objects.filter(pk=run_id).select_related("version__judge__criterion__project").first()


@shared_task(acks_late=True, reject_on_worker_lost=True)
def judge_run_task(run_id: int) -> int:
    """Plan a run and queue its chunks; returns how many chunks were queued."""
    run = _load(run_id)
    if run is None:
        return 0
    chunks = judge_run_plan(run=run)
    for chunk in chunks:
        judge_run_chunk_task.delay(run_id, chunk)
    return len(chunks)


@shared_task(acks_late=True, reject_on_worker_lost=True)
def judge_run_chunk_task(run_id: int, trace_ids: list[int]) -> int:
    run = _load(run_id)
    if run is None:
        return 0
    written = judge_run_chunk(run=run, trace_ids=trace_ids)
    judge_run_maybe_finish(run=run)
    return written


def judge_runs_resume() -> list[int]:
    """Queue again every run that is waiting or whose worker died; returns their ids."""
    run_ids = list(claimable_runs(timezone.now()).values_list("pk", flat=True))
    for run_id in run_ids:
        judge_run_task.delay(run_id)
    return run_ids


resume_when_a_worker_starts("judge runs", judge_runs_resume)
