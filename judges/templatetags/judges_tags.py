from __future__ import annotations

from django import template

from judges import kinds
from judges.models import Judge

register = template.Library()


@register.filter
def cannot_run_here(judge: Judge) -> str:
    """Why the judge's runs cannot run on this server as configured (its kind says), or "" when they can."""
    return kinds.get(judge.kind).unavailable_reason()


@register.filter
def kind_label(judge: Judge) -> str:
    """The judge's kind as a page names it ("Assertion", "LLM")."""
    return kinds.get(judge.kind).display
