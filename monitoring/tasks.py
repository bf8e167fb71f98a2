"""Celery tasks for monitoring: thin wrappers around the services, run by beat (evalstudio/settings.py,
CELERY_BEAT_SCHEDULE) and by the kick after an ingestion. Safe to run twice or at once: drains share the work
through leases on their cursors, and alert evaluation locks each rule."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from annotation.models import Project
from core.runs import resume_when_a_worker_starts
from monitoring.alerts import alert_rules_evaluate
from monitoring.services import monitoring_drain, projects_to_drain

logger = logging.getLogger(__name__)


# Both limits stay under EVALSTUDIO_MONITOR_LEASE_SECONDS (600 s), so a chunk is never leased to a second drain
# while the first still judges it; a drain stops taking chunks after its budget (50 s), so this is only a net.
@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=8 * 60, time_limit=9 * 60)
def monitor_drain_task(project_id: int | None = None) -> int:
    """Judge the sampled traces of one project (or of every project with a promoted judge); returns how many."""
    project_ids = [project_id] if project_id is not None else projects_to_drain()
    judged = 0
    for project in Project.objects.filter(pk__in=project_ids):
        try:
            judged += monitoring_drain(project=project)
        except SoftTimeLimitExceeded:
            raise  # the task's own limit: stop here rather than start on the next project
        except Exception:
            # One project's broken judge (a bad API key, a provider down) must not starve the others.
            logger.exception("Monitoring drain of %s failed", project.slug)
    return judged


# Each rule is one aggregate query and at most one webhook POST (5 s timeout).
@shared_task(acks_late=True, reject_on_worker_lost=True, soft_time_limit=4 * 60, time_limit=5 * 60)
def monitor_alerts_task() -> int:
    """Evaluate every enabled alert rule on its latest complete bucket; returns how many alerts fired."""
    return len(alert_rules_evaluate())


def _drain_backlog() -> list[int]:
    """When a worker starts, the backlog that piled up while none ran starts draining at once, not at the next beat."""
    project_ids = projects_to_drain()
    if project_ids:
        monitor_drain_task.delay()
    return project_ids


resume_when_a_worker_starts("monitoring backlog of projects", _drain_backlog)
