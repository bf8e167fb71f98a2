"""Celery tasks for grading: thin wrappers that load a run and call the service."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from agents.models import GradingRun
from agents.services import claimable_runs, grading_run_execute
from evalstudio.celery import resume_when_a_worker_starts


@shared_task(acks_late=True, reject_on_worker_lost=True)
def grading_run_task(run_id: int) -> int:
    """Grade the run's trials; returns how many it graded (0 when the run is gone or another worker holds it)."""
    run = GradingRun.objects.filter(pk=run_id).select_related("grader__project").first()
    if run is None:
        return 0
    return grading_run_execute(run=run).graded


def grading_runs_resume() -> list[int]:
    """Queue again every grading run that is waiting or whose worker died; returns their ids."""
    run_ids = list(claimable_runs(timezone.now()).values_list("pk", flat=True))
    for run_id in run_ids:
        grading_run_task.delay(run_id)
    return run_ids


resume_when_a_worker_starts("grading runs", grading_runs_resume)
