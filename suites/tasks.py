"""Celery task for suite runs posted with `"wait": false`: a thin wrapper that loads the run and judges it.

Safe to run twice (conditional claim, unique verdicts); a worker that starts queues again the runs that are
waiting or whose worker died (a stale heartbeat).
"""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from evalstudio.celery import resume_when_a_worker_starts
from suites.evalsuite import claimable_suite_runs, evalsuite_execute
from suites.models import SuiteRun


@shared_task(acks_late=True, reject_on_worker_lost=True)
def suite_run_task(run_id: int) -> int | None:
    run = SuiteRun.objects.filter(pk=run_id).first()
    if run is None:
        return None
    outcome = evalsuite_execute(run=run)
    return None if outcome is None else outcome.exit_code


def suite_runs_resume() -> list[int]:
    """Queue again every suite run that is waiting or whose worker died; returns their ids."""
    run_ids = list(claimable_suite_runs(timezone.now()).values_list("pk", flat=True))
    for run_id in run_ids:
        suite_run_task.delay(run_id)
    return run_ids


resume_when_a_worker_starts("suite runs", suite_runs_resume)
