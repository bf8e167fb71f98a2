"""Queueing a task from a request or an import without waiting on the broker: the one way this house sends a task
whose loss only delays work (a recount, a drain) and that a caller must never wait for or fail on."""

from __future__ import annotations

import logging

from celery import current_app

logger = logging.getLogger(__name__)


def task_send_now(name: str, *args: object) -> bool:
    """Queue the Celery task registered as `name` once, without the publish retries that would hold the caller on a
    broker that is down; False, logged, when the broker did not take it (the caller falls back: a page counts for
    itself, Celery beat drains later). Never raises."""
    try:
        current_app.tasks[name].apply_async(args=list(args), retry=False)
    except Exception as exc:  # noqa: BLE001 - a broker that is down or unreachable, whatever the transport raises
        logger.warning("%s was not queued (%s: %s)", name, type(exc).__name__, exc)
        return False
    return True
