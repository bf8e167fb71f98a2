"""A Celery consumer step: when a worker's broker connection comes back after an outage, queue the waiting runs again.

A run started while the broker was down is stored QUEUED but never published (core.runs.run_enqueue). A worker that
starts afterwards queues it (`runs_resume` on worker_ready), but a worker that stayed up through the outage only
reconnects, and worker_ready is sent once per process. The consumer's blueprint, though, starts its steps again on
every reconnection: this step runs `runs_resume` then (not on the first start, which worker_ready covers).
Safe to repeat: a delivery claims its run with a conditional UPDATE, so a run queued twice is worked once.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import bootsteps

logger = logging.getLogger(__name__)


class ResumeRunsOnReconnect(bootsteps.StartStopStep):
    requires = {"celery.worker.consumer.tasks:Tasks"}

    def start(self, c: Any) -> None:
        if c.restart_count < 1:
            return  # the first connection: worker_ready resumes the runs

        def resume() -> None:
            from django.db import connection

            from core.runs import runs_resume

            try:
                queued = runs_resume()
            except Exception:
                logger.exception("Could not look for runs to resume after the broker came back")
                return
            finally:
                connection.close()  # this thread's own connection
            if queued:
                logger.info("Broker back: resumed worker runs %s", queued)

        # Off the consumer's thread: reading the database must not delay the event loop that follows this step.
        threading.Thread(target=resume, name="resume runs after reconnect", daemon=True).start()
