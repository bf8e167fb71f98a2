"""Celery tasks of the annotation app: thin wrappers that claim a row and call a service."""

from __future__ import annotations

from celery import shared_task

from annotation.ingest import import_job_execute
from annotation.models import ImportJob


@shared_task
def import_job_run(job_id: int) -> str:
    """Import an uploaded file. Safe to run twice: only the run that moves the job from queued to running works."""
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING
    )
    if not claimed:
        return "not queued (already taken, finished or deleted)"
    job = ImportJob.objects.select_related("user").get(pk=job_id)
    return import_job_execute(job=job).status
