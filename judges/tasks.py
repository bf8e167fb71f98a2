"""Celery tasks for judges: thin wrappers that load a run and call the services.

A run fans out: `judge_run_task` claims it and queues one `judge_run_chunk_task` per chunk of traces; whichever
chunk writes the last judgment writes the report. Every task is safe to run twice (conditional claim, unique
judgments). A judge run is a worker run (core.runs): its heartbeat is kept while a chunk is judged, and a run whose
worker died is taken over by the next delivery of `judge_run_task`, which plans only what is left.
"""

from __future__ import annotations

from celery import Task, shared_task

from core.runs import retry_when_database_away, run_take, run_task
from judges.bias import bias_run_work
from judges.models import BiasRun, JudgeRun
from judges.services import judge_run_chunk, judge_run_chunks_left, judge_run_maybe_finish


def _load(run_id: int) -> JudgeRun | None:
    return JudgeRun.objects.filter(pk=run_id).select_related("version__judge__criterion__project").first()


# Planning reads the split's labelled trace ids (or copies an external judge's imported verdicts): seconds.
@run_task(model=JudgeRun, soft_time_limit=10 * 60, time_limit=11 * 60)
def judge_run_task(self: Task, run_id: int) -> int:
    """Claim a run and queue its chunks; returns how many chunks were queued."""
    run = _load(run_id)
    if run is None or not run_take(run=run, task=self):
        return 0
    chunks = judge_run_chunks_left(run=run)
    for chunk in chunks:
        # The chunks belong to this attempt: after a takeover, the new attempt's own chunks do what is left.
        judge_run_chunk_task.delay(run_id, chunk, str(run.claim_token))
    return len(chunks)


# An LLM chunk is 16 calls per concurrency slot, each retried with backoff; a chunk slower than this is stuck.
@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True, soft_time_limit=15 * 60, time_limit=16 * 60)
def judge_run_chunk_task(self: Task, run_id: int, trace_ids: list[int], claim_token: str | None = None) -> int:
    # A chunk that loses the database is retried, not dropped: dropped, its traces waited for a worker restart.
    with retry_when_database_away(self):
        run = _load(run_id)
        if run is None:
            return 0
        if claim_token is not None and str(run.claim_token) != claim_token:
            return 0  # planned by an attempt that was taken over; the attempt that owns the run queued its own chunks
        written = judge_run_chunk(run=run, trace_ids=trace_ids)
        judge_run_maybe_finish(run=run)
        return written


# A battery asks about six prompts per dev trace, CALLS_PER_SLOT per concurrency slot at a time; answers already
# received are stored, so a battery stopped by the limit and run again pays only for the rest.
@run_task(model=BiasRun, soft_time_limit=50 * 60, time_limit=55 * 60)
def bias_run_task(self: Task, run_id: int) -> bool:
    """Claim a bias battery and run it; True when this delivery finished it."""
    run = BiasRun.objects.filter(pk=run_id).select_related("version__judge__criterion__project").first()
    if run is None or not run_take(run=run, task=self):
        return False
    return bias_run_work(run=run)


@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=10 * 60, time_limit=11 * 60)
def loop_digests_task() -> int:
    """The beat's weekly digests: send those that are due (safe to run twice: each is claimed first)."""
    from judges.digest import digests_send_due

    return digests_send_due()
