from __future__ import annotations

from django.apps import AppConfig


def _sample_stored_traces(*, batch: object, **_kwargs: object) -> None:
    # Imported on first use: monitoring's services pull in the judges, which a process that never ingests
    # (a worker judging, a management command) need not load at start-up.
    from monitoring.services import stored_traces_sample

    stored_traces_sample(batch=batch)


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Production monitoring"

    def ready(self) -> None:
        from annotation.models import Trace
        from annotation.signals import traces_stored

        # Ingestion announces every batch it stores; monitoring decides which of those traces to judge.
        traces_stored.connect(_sample_stored_traces, sender=Trace, dispatch_uid="monitoring.sample_stored_traces")
