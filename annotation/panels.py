"""Panels that later apps contribute to annotation's pages, so that annotation imports none of them.

A later app registers, in its `AppConfig.ready`, a panel for a slot of a page: a template and a function that
returns the panel's context (or None to show nothing). The page renders the panels of its slot in order, each
with the page's own context (`project`, `access`, and what the slot adds: `trace` and `qs` on the review page,
`criterion` on the criterion page) plus the panel's. Suites' golden-set panel on the review page is one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

# The project overview, the review page (one trace), the page that edits a criterion, and the failure-modes page.
SLOTS = ("project", "review", "criterion", "failure_modes")

PanelContext = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]


@dataclass(frozen=True)
class Panel:
    name: str
    template: str
    context: PanelContext
    order: int


_panels: dict[str, dict[str, Panel]] = {slot: {} for slot in SLOTS}


def panel_register(*, slot: str, name: str, template: str, context: PanelContext, order: int = 100) -> None:
    """Show `template` in `slot` of its page. Registering a name again replaces the panel (safe to repeat)."""
    if slot not in _panels:
        raise ValueError(f"slot: expected one of {', '.join(SLOTS)}, got {slot!r}")
    _panels[slot][name] = Panel(name=name, template=template, context=context, order=order)


def panel_unregister(*, slot: str, name: str) -> None:
    _panels[slot].pop(name, None)


def panels_render(*, slot: str, request: HttpRequest, context: Mapping[str, Any]) -> list[SafeString]:
    """Every panel of the slot rendered in order (each template escapes its own content)."""
    rendered = []
    for panel in sorted(_panels[slot].values(), key=lambda p: (p.order, p.name)):
        extra = panel.context(context)
        if extra is not None:
            rendered.append(render_to_string(panel.template, {**context, **extra}, request=request))
    return rendered
