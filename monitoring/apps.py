from __future__ import annotations

from django.apps import AppConfig


def _kick_on_stored_traces(*, batch: object, **_kwargs: object) -> None:
    # Imported on first use: monitoring's services pull in the judges, which a process that never ingests
    # (a worker judging, a management command) need not load at start-up.
    from monitoring.services import stored_traces_kick

    stored_traces_kick(batch=batch)


class MonitoringConfig(AppConfig):
    name = "monitoring"
    verbose_name = "Production monitoring"

    def ready(self) -> None:
        import monitoring.tasks  # noqa: F401 - the drain that services queue by name (core.queue)
        from annotation.models import Trace
        from annotation.signals import traces_stored
        from judges.monitored import provider_register
        from monitoring.checks import PromotedJudges

        # Monitoring's own checks: each criterion's promoted judge version. Later apps register theirs.
        provider_register(PromotedJudges())

        # Ingestion announces every batch it stores; new production traces mean a drain has work to do.
        traces_stored.connect(_kick_on_stored_traces, sender=Trace, dispatch_uid="monitoring.kick_on_stored_traces")
