from __future__ import annotations

import logging
import os
from collections.abc import Callable

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalstudio.settings")

app = Celery("evalstudio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
logger = logging.getLogger(__name__)


def resume_when_a_worker_starts(what: str, resume: Callable[[], list[int]]) -> None:
    """Run `resume` (which queues again the work of `what` that is waiting or lost its worker, returning the ids)
    each time a worker starts. The filesystem broker of `make run` has no redelivery, so a worker restart is where
    lost work comes back. A failure is logged: a worker must start even when the database is briefly away."""

    def on_start(**_kwargs: object) -> None:
        try:
            ids = resume()
        except Exception:
            logger.exception("Could not look for %s to resume", what)
            return
        if ids:
            logger.info("Resumed %s %s", what, ids)

    worker_ready.connect(on_start, weak=False)
