"""Celery tasks for judges: thin wrappers that load a run and call the service."""

from __future__ import annotations

from celery import shared_task

from judges.models import JudgeRun
from judges.services import judge_run_execute


@shared_task(acks_late=True, reject_on_worker_lost=True)
def judge_run_task(run_id: int) -> str:
    run = JudgeRun.objects.filter(pk=run_id).select_related("version__judge__criterion__project").first()
    if run is None:
        return "gone"
    return judge_run_execute(run=run).status
