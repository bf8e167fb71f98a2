from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.apps import AppConfig


def _golden_panel(context: Mapping[str, Any]) -> dict[str, Any]:
    from suites.golden import golden_panel_state

    return {"golden_panel": golden_panel_state(trace=context["trace"])}


def _golden_overview(context: Mapping[str, Any]) -> dict[str, Any]:
    from suites.golden import golden_size

    return {"golden_size": golden_size(project=context["project"])}


def _floor_panel(context: Mapping[str, Any]) -> dict[str, Any] | None:
    from suites.floors import suite_floor

    criterion = context.get("criterion")
    if criterion is None:
        return None  # a criterion being created has no floor yet; it is set once the criterion exists
    return {"suite_floor": suite_floor(criterion=criterion)}


def _suite_in_ci(project: Any, now: datetime) -> str:
    """Level 2 of the maturity scale: a regression-suite run finished (evalsuite runs them from CI)."""
    from suites.models import SuiteRun

    run = (
        SuiteRun.objects.filter(project=project, status=SuiteRun.Status.DONE, finished_at__lte=now)
        .order_by("-finished_at", "-id")
        .first()
    )
    return f"regression suite run “{run}” finished {run.finished_at:%Y-%m-%d}" if run else ""


class SuitesConfig(AppConfig):
    name = "suites"
    verbose_name = "Golden sets and regression suites"

    def ready(self) -> None:
        # Its worker runs are registered with core.runs, which queues them (run_enqueue) and resumes them.
        import suites.tasks  # noqa: F401
        from annotation.panels import panel_register

        panel_register(slot="review", name="golden", template="suites/_golden_panel.html", context=_golden_panel)
        panel_register(slot="project", name="golden", template="suites/_golden_overview.html", context=_golden_overview)
        panel_register(slot="criterion", name="suite_floor", template="suites/_floor_panel.html", context=_floor_panel)

        from judges.maturity import maturity_register

        maturity_register(name="suites.suite_run", level=2, evidence=_suite_in_ci)
