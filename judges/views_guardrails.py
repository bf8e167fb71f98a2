"""Guardrails in the browser (judges.guardrails): the expert marks a version guardrail-ready or revokes it, and sets
the guardrail bar. Everyone in the project sees which checks are guardrails and why the others are not."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.access import Permission, get_project_for_user
from annotation.models import Project
from annotation.services import DomainError
from judges.guardrails import (
    RULE,
    GuardrailRefused,
    bar_percent,
    guardrail_bar,
    guardrail_bar_set,
    guardrail_history,
    guardrail_mark,
    guardrail_revoke,
    guardrails_overview,
)
from judges.models import Judge, JudgeVersion
from judges.views_promotion import COMMENT_MAX_CHARS, parse_bar_value


def guardrails_page_context(*, project: Project) -> dict[str, Any]:
    """The judges page's guardrails block, as template context."""
    bar = guardrail_bar(project=project)
    return {
        "guardrail_bar": bar,
        "guardrail_bar_text": bar_percent(bar),
        "guardrail_rule": RULE,
        "guardrail_rows": guardrails_overview(project=project),
        "guardrail_history": guardrail_history(project=project),
    }


def _version(request: HttpRequest, slug: str, judge_id: int, number: int) -> tuple[Judge, JudgeVersion]:
    access = get_project_for_user(request, slug, Permission.MARK_GUARDRAILS)
    judge = access.get_object_or_404(Judge.objects.select_related("criterion"), pk=judge_id)
    return judge, get_object_or_404(JudgeVersion, judge=judge, number=number)


@login_required
@require_POST
def judge_version_guardrail_mark_view(request: HttpRequest, slug: str, judge_id: int, number: int) -> HttpResponse:
    judge, version = _version(request, slug, judge_id, number)
    comment = request.POST.get("comment", "").strip()[:COMMENT_MAX_CHARS]
    try:
        guardrail_mark(version=version, user=request.user, comment=comment)
    except GuardrailRefused as exc:
        messages.error(request, f"{version} was not marked guardrail-ready. {exc}")
    else:
        messages.success(
            request, f"{version} is guardrail-ready: POST …/guardrails/check and export_guardrails run it."
        )
    return redirect(f"{reverse('judge_detail', args=[slug, judge.pk])}#v{version.number}")


@login_required
@require_POST
def judge_version_guardrail_revoke_view(request: HttpRequest, slug: str, judge_id: int, number: int) -> HttpResponse:
    judge, version = _version(request, slug, judge_id, number)
    if guardrail_revoke(version=version, user=request.user) is None:
        messages.info(request, f"{version} was not guardrail-ready.")
    else:
        messages.success(request, f"{version} is no longer a guardrail; its mark stays on record.")
    return redirect(f"{reverse('judge_detail', args=[slug, judge.pk])}#v{version.number}")


@login_required
@require_POST
def guardrail_bar_update(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.MARK_GUARDRAILS)
    back = f"{reverse('judge_list', args=[slug])}#guardrails"
    min_tpr, error = parse_bar_value("min_tpr", request.POST.get("min_tpr", ""))
    if error or min_tpr is None:
        messages.error(request, f"Guardrail bar not changed. {error}")
        return redirect(back)
    try:
        guardrail_bar_set(project=access.project, min_tpr=min_tpr, user=request.user)
    except DomainError as exc:
        messages.error(request, f"Guardrail bar not changed. {exc}")
    else:
        messages.success(request, f"Guardrail bar: TPR ≥ {bar_percent(min_tpr)} on dev and on test.")
    return redirect(back)
