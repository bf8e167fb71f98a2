from __future__ import annotations

from django import template
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from annotation.models import Project
from monitoring.selectors import open_alerts_banner
from monitoring.series import BucketStats

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


@register.simple_tag
def rate(value: float | None, low: float | None, high: float | None, missing: str = "") -> SafeString:
    """A rate with its 95% interval, or why there is none (a simple tag: a table of 168 buckets renders it 336
    times, where an {% include %} costs ten times as much)."""
    if value is None or value == "" or low is None or high is None:
        return format_html('<span class="monitor-undefined">{}</span>', missing or "—")
    # Whole percents, unless the interval is narrower than 4 points: "86% (85%–86%)" would hide it.
    digits = 1 if high - low < 0.04 else 0
    return format_html(
        '<strong>{}</strong> <span class="ci">({}–{})</span>',
        percent(value, digits),
        percent(low, digits),
        percent(high, digits),
    )


@register.simple_tag
def corrected_rate(stats: BucketStats) -> SafeString:
    """A bucket's corrected pass rate with its interval (or why there is none), followed by its flags: a clipped
    estimate, or an interval from which many draws were dropped, is never shown without saying so."""
    corrected = stats.corrected
    shown = (
        rate(corrected.estimate, corrected.low, corrected.high)
        if corrected is not None
        else rate(None, None, None, stats.corrected_missing)
    )
    flags = format_html_join("", '<span class="monitor-flag">⚠ {}</span>', ((flag,) for flag in stats.corrected_flags))
    return format_html("{}{}", shown, flags)


@register.filter
def flagged_buckets(rows: list) -> int:
    """How many of the series table's rows (each with `.stats`) carry a flagged corrected rate."""
    return sum(1 for row in rows if row.stats.corrected_flags)
