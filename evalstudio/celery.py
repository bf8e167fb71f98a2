from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "evalstudio.settings")

app = Celery("evalstudio")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Runs started while the broker was down are queued again when a worker's connection comes back (core/worker_steps.py).
app.steps["consumer"].add("core.worker_steps.ResumeRunsOnReconnect")
