"""Celery tasks for grading: thin wrappers that load a run and call the service.

A grading run is a worker run (core.runs): safe to run twice (conditional claim, one grade per trial); a delivery
that finds it running elsewhere retries when that worker's heartbeat would be stale, and a worker that starts queues
again the runs that are waiting or whose worker died.
"""

from __future__ import annotations

from celery import Task

from agents.models import GradingRun
from agents.services import grading_run_execute
from core.runs import run_retry_later, run_task


# Assertions on the final output: tens of thousands of trials a second; a run slower than this is stuck.
@run_task(model=GradingRun, soft_time_limit=15 * 60, time_limit=16 * 60)
def grading_run_task(self: Task, run_id: int) -> int:
    """Grade the run's trials; returns how many it graded (0 when the run is gone or another worker holds it)."""
    run = GradingRun.objects.filter(pk=run_id).select_related("grader__project").first()
    if run is None:
        return 0
    run = grading_run_execute(run=run)
    if not run.is_finished:  # not claimed: another attempt holds it
        run_retry_later(run=run, task=self)
        return 0
    return run.graded
