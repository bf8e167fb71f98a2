from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.apps import AppConfig


def _loop_panel(context: Mapping[str, Any]) -> dict[str, Any] | None:
    from annotation.access import Permission
    from judges.loop import loop_facts
    from judges.models import LoopCadence

    project, access = context["project"], context.get("access")
    if access is None:
        return None  # the dashboard's links and settings depend on who is looking
    extra: dict[str, Any] = {"loop": loop_facts(project=project)}
    # The webhook and its last error are the expert's settings: shown only to whoever may change them.
    if access.can(Permission.SET_PROMOTION_BAR):
        row = LoopCadence.objects.filter(project=project).first()
        extra.update(loop_digest_url=row.digest_url if row else "", loop_digest_error=row.digest_error if row else "")
    return extra


def _coverage_panel(context: Mapping[str, Any]) -> dict[str, Any] | None:
    from judges.loop import coverage

    if context.get("filter_errors"):
        return None  # the page shows no numbers while a filter is wrong; neither does its coverage section

    return {"coverage": coverage(project=context["project"])}


class JudgesConfig(AppConfig):
    name = "judges"
    verbose_name = "Judges"

    def ready(self) -> None:
        # Its worker runs are registered with core.runs, which queues them (run_enqueue) and resumes them.
        import judges.tasks  # noqa: F401
        from annotation.panels import panel_register

        # The project page is the loop's dashboard; the failure-modes page shows how the judges cover the taxonomy.
        panel_register(slot="project", name="loop", template="judges/_loop_panel.html", context=_loop_panel, order=50)
        panel_register(
            slot="failure_modes", name="coverage", template="judges/_coverage_panel.html", context=_coverage_panel
        )
