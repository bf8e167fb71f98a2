from __future__ import annotations

from django import template

from annotation.models import Project
from monitoring.selectors import open_alerts_banner

register = template.Library()


@register.inclusion_tag("monitoring/_banner.html")
def monitoring_banner(project: Project) -> dict:
    """The open-alerts banner of a project's pages (one cached read; see selectors.open_alerts_banner)."""
    return {"project": project, "banner": open_alerts_banner(project=project)}


@register.filter
def percent(value: float | None, digits: int = 0) -> str:
    """0.934 → "93%"; None → "—" (undefined, never 0)."""
    if value is None:
        return "—"
    return f"{value * 100:.{int(digits)}f}%"
