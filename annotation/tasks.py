"""Celery tasks of the annotation app: thin wrappers that claim a row and call a service.

Imports and suggestion runs are worker runs (core.runs): safe to run twice, since only the delivery whose
conditional UPDATE claims the run works; one that finds it RUNNING with a fresh heartbeat retries when that
heartbeat would be stale, and then takes the run over if its worker died.
"""

from __future__ import annotations

from celery import Task, shared_task

from annotation.ingest import import_job_execute
from annotation.models import ImportJob, SuggestionRun
from annotation.suggestions import suggestion_run_execute
from core.runs import resume_when_a_worker_starts, run_take, run_task

NOT_CLAIMABLE = "not claimable (finished or deleted)"


# An upload may be up to EVALSTUDIO_MAX_UPLOAD_BYTES (2 GB): millions of traces at the ~25k/s measured in bench/.
# Both limits stay under the broker's visibility timeout (3600 s), so the task is not redelivered while it runs.
@run_task(model=ImportJob, soft_time_limit=50 * 60, time_limit=55 * 60)
def import_job_task(self: Task, job_id: int) -> str:
    """Import an uploaded file. A takeover imports from the start again, which is safe: traces are keyed by id, so
    what the lost attempt wrote counts as duplicates, not twice."""
    job = ImportJob.objects.select_related("user").filter(pk=job_id).first()
    if job is None or not run_take(run=job, task=self):
        return NOT_CLAIMABLE
    return import_job_execute(job=job).status


# Clustering 20,000 notes takes a minute or two; naming each group with an LLM adds a call (30 s at most) per group.
@run_task(model=SuggestionRun, soft_time_limit=30 * 60, time_limit=32 * 60)
def suggestion_run_task(self: Task, run_id: int) -> str:
    """Cluster a project's uncoded notes into suggestions. A takeover replaces whatever the lost attempt wrote."""
    run = SuggestionRun.objects.select_related("project").filter(pk=run_id).first()
    if run is None or not run_take(run=run, task=self):
        return NOT_CLAIMABLE
    return suggestion_run_execute(run=run).status


@shared_task(ignore_result=True, soft_time_limit=5 * 60, time_limit=6 * 60)
def taxonomy_recount_task(project_id: int, kind: str, parts: list[list[str]]) -> None:
    """Recounts one failure-taxonomy cache entry that a page showed stale. Safe to run twice: it only overwrites
    the entry with the numbers as they are now."""
    from annotation.models import Project
    from annotation.taxonomy import taxonomy_recount

    project = Project.objects.filter(pk=project_id).first()
    if project is not None:
        taxonomy_recount(project=project, kind=kind, parts=[(key, value) for key, value in parts])


# A drain of 20,000 traces takes well under a minute; one that ran out of time leaves its unfinished chunk marked
# (the chunk's transaction rolls back), and the next drain assembles it.
@shared_task(name="annotation.otel_assemble", ignore_result=True, soft_time_limit=10 * 60, time_limit=11 * 60)
def otel_assemble_task() -> dict[str, int]:
    """Assemble every OTel trace whose spans changed (annotation.otel.store). Safe to run twice, or many times at
    once: each chunk is claimed with SKIP LOCKED, and a drain that finds nothing does nothing."""
    from dataclasses import asdict

    from annotation.otel.store import assembly_drain

    return asdict(assembly_drain())


def _otel_assembly_resume() -> list[str]:
    from annotation.otel.store import assembly_resume

    return assembly_resume()


resume_when_a_worker_starts("OTel traces waiting for assembly", _otel_assembly_resume)
