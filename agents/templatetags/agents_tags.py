from __future__ import annotations

from django import template

register = template.Library()


@register.filter
def pct(value: float | None) -> str:
    """0.734 → "73.4%"; "–" for an undefined value."""
    if value is None:
        return "–"
    return f"{value * 100:.1f}%"


@register.filter
def ci(interval: tuple[float, float] | list[float] | None) -> str:
    """(0.61, 0.83) → "61.0–83.0%"; "" when there is no interval."""
    if not interval:
        return ""
    low, high = interval
    return f"{low * 100:.1f}–{high * 100:.1f}%"
