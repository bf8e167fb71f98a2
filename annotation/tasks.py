"""Celery tasks of the annotation app: thin wrappers that claim a row and call a service."""

from __future__ import annotations

from datetime import datetime, timedelta

from celery import Task, shared_task
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotation.ingest import import_job_execute
from annotation.models import ImportJob, SuggestionRun
from annotation.suggestions import SUGGESTION_STALE_AFTER, claimable_runs, suggestion_run_execute
from evalstudio.celery import resume_when_a_worker_starts

# A running import saves progress after every batch (seconds apart); this much silence means its worker is gone.
IMPORT_STALE_AFTER = timedelta(minutes=2)


def _claimable_jobs(now: datetime) -> QuerySet[ImportJob]:
    stale = Q(status=ImportJob.Status.RUNNING) & (
        Q(heartbeat_at__lt=now - IMPORT_STALE_AFTER) | Q(heartbeat_at=None, created_at__lt=now - IMPORT_STALE_AFTER)
    )
    return ImportJob.objects.filter(Q(status=ImportJob.Status.QUEUED) | stale)


@shared_task(bind=True, max_retries=60)
def import_job_run(self: Task, job_id: int) -> str:
    """Import an uploaded file. Safe to run twice: only the run whose conditional UPDATE claims the job works.

    A job still RUNNING with a fresh heartbeat belongs to another worker; this delivery waits and looks again,
    so a redelivery after a worker died resumes the job once its heartbeat has gone stale. Re-importing from the
    start is safe: traces are keyed by id, so what the lost run wrote counts as duplicates, not twice.
    """
    now = timezone.now()
    claimed = _claimable_jobs(now).filter(pk=job_id).update(status=ImportJob.Status.RUNNING, heartbeat_at=now)
    if not claimed:
        if ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.RUNNING).exists():
            raise self.retry(countdown=IMPORT_STALE_AFTER.total_seconds())
        return "not claimable (finished or deleted)"
    job = ImportJob.objects.select_related("user").get(pk=job_id)
    return import_job_execute(job=job).status


def import_jobs_resume(*, now: datetime | None = None) -> list[int]:
    """Queue again every job that is waiting or whose worker died; returns their ids.

    The filesystem broker of `make run` has no redelivery, so a worker restart is where lost jobs come back.
    """
    job_ids = list(_claimable_jobs(now or timezone.now()).values_list("pk", flat=True))
    for job_id in job_ids:
        import_job_run.delay(job_id)
    return job_ids


resume_when_a_worker_starts("import jobs", import_jobs_resume)


@shared_task(bind=True, max_retries=60)
def suggestion_run_run(self: Task, run_id: int) -> str:
    """Cluster a project's uncoded notes into suggestions. Safe to run twice, like `import_job_run`: only the
    delivery whose conditional UPDATE claims the run works; one finding it RUNNING with a fresh heartbeat waits and
    takes it over once that heartbeat is stale. A takeover replaces whatever the lost attempt wrote."""
    now = timezone.now()
    claimed = (
        claimable_runs(now).filter(pk=run_id).update(status=SuggestionRun.Status.RUNNING, heartbeat_at=now, error="")
    )
    if not claimed:
        if SuggestionRun.objects.filter(pk=run_id, status=SuggestionRun.Status.RUNNING).exists():
            raise self.retry(countdown=SUGGESTION_STALE_AFTER.total_seconds())
        return "not claimable (finished or deleted)"
    run = SuggestionRun.objects.select_related("project").get(pk=run_id)
    return suggestion_run_execute(run=run).status


def suggestion_runs_resume(*, now: datetime | None = None) -> list[int]:
    """Queue again every run that is waiting or whose worker died; returns their ids."""
    run_ids = list(claimable_runs(now or timezone.now()).values_list("pk", flat=True))
    for run_id in run_ids:
        suggestion_run_run.delay(run_id)
    return run_ids


resume_when_a_worker_starts("suggestion runs", suggestion_runs_resume)


@shared_task(ignore_result=True)
def taxonomy_recount_task(project_id: int, kind: str, parts: list[list[str]]) -> None:
    """Recounts one failure-taxonomy cache entry that a page showed stale. Safe to run twice: it only overwrites
    the entry with the numbers as they are now."""
    from annotation.models import Project
    from annotation.taxonomy import taxonomy_recount

    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        taxonomy_recount(project=project, kind=kind, parts=[(key, value) for key, value in parts])
