from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def pct(value: float | None) -> str:
    """0.734 → "73.4%"; "–" for an undefined value."""
    if value is None:
        return "–"
    return f"{_percent(value)}%"


@register.filter
def ci(interval: tuple[float, float] | list[float] | None) -> str:
    """(0.61, 0.83) → "61.0–83.0%"; "" when there is no interval."""
    if not interval:
        return ""
    low, high = interval
    return f"{_percent(low)}–{_percent(high)}%"


def _percent(value: float) -> str:
    # Adding 0.0 turns a rounded -0.0 (a bootstrap bound a hair below zero) into 0.0.
    return f"{round(value * 100, 1) + 0.0:.1f}"
