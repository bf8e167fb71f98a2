from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.apps import AppConfig


def _kick_on_stored_traces(*, batch: object, **_kwargs: object) -> None:
    # Imported on first use: monitoring's services pull in the judges, which a process that never ingests
    # (a worker judging, a management command) need not load at start-up.
    from monitoring.services import stored_traces_kick

    stored_traces_kick(batch=batch)


def _production_sampling(project: Any, now: datetime) -> str:
    """Level 3 of the maturity scale: monitoring has judged production traces with a promoted check."""
    from monitoring.models import MonitorJudgment

    # exists(), not a count: a project monitored for months has millions of verdicts.
    judged = MonitorJudgment.objects.filter(project=project, created_at__lte=now).exclude(verdict="").exists()
    return "monitoring judges production traces with a promoted check" if judged else ""


def _continuous(project: Any, now: datetime) -> str:
    """Level 4: monitoring judged production traces within the last day (continuous evaluation)."""
    from monitoring.models import MonitorJudgment

    since = now - timedelta(days=1)
    judged = (
        MonitorJudgment.objects.filter(project=project, created_at__gt=since, created_at__lte=now)
        .exclude(verdict="")
        .exists()
    )
    return "monitoring judged production traces in the last day" if judged else ""


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

        from judges.maturity import maturity_register

        maturity_register(name="monitoring.sampling", level=3, evidence=_production_sampling)
        maturity_register(name="monitoring.continuous", level=4, evidence=_continuous)
