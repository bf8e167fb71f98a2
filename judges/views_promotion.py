"""Promotion in the browser: promote or withdraw a judge version, the project's bar, and the record of promotions.

Who may do what: the expert and engineers promote and withdraw (they build and run judges; promotion itself is
guarded by evidence, the test run against the bar, so it needs no further authority). Only the expert sets the bar,
because the bar says how closely a judge must agree with the expert's own labels. Viewers see everything.
"""

from __future__ import annotations

import math
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.access import Permission, get_project_for_user
from annotation.models import Criterion, Project
from annotation.services import DomainError
from judges.kinds import versions_drift
from judges.models import Judge, JudgeVersion
from judges.promotions import (
    BAR_MAX_EXCLUSIVE,
    BAR_MIN_EXCLUSIVE,
    BAR_RANGE_ERROR,
    FLIP_BAR_MAX,
    FLIP_BAR_MIN,
    FLIP_BAR_RANGE_ERROR,
    RULE,
    PromotionRefused,
    judge_promotion_states,
    judge_version_promote,
    promotion_bar_set,
    promotion_history_page,
    promotion_withdraw,
)
from judges.providers.bias import percent as flip_percent

HISTORY_LIMIT = 200
COMMENT_MAX_CHARS = 2000


# --- the bar -------------------------------------------------------------------------------------------------------


def parse_bar_value(name: str, raw: str) -> tuple[float | None, str | None]:
    """A bar value from a form: a fraction in (0.5, 1) ("0.9"), or a percentage ("90%"). Returns (value, error)."""
    text = raw.strip()
    percent = text.endswith("%")
    try:
        value = float(text.rstrip("%").strip())
    except ValueError:
        return None, f"{name}: expected a number in (0.5, 1) such as 0.9, got {raw!r}"
    if percent:
        value /= 100
    if not math.isfinite(value) or not BAR_MIN_EXCLUSIVE < value < BAR_MAX_EXCLUSIVE:
        return None, f"{name}: {BAR_RANGE_ERROR}, got {raw!r}"
    return value, None


def parse_flip_value(raw: str) -> tuple[float | None, str | None]:
    """The bias bar from a form: a fraction from 0 to 0.5 ("0.05") or a percentage ("5%"); blank keeps the current
    one (None, None). Returns (value, error)."""
    text = raw.strip()
    if not text:
        return None, None
    percent = text.endswith("%")
    try:
        value = float(text.rstrip("%").strip())
    except ValueError:
        return None, f"max_flip_rate: expected a number from 0 to 0.5 such as 0.05, got {raw!r}"
    if percent:
        value /= 100
    if not math.isfinite(value) or not FLIP_BAR_MIN <= value <= FLIP_BAR_MAX:
        return None, f"max_flip_rate: {FLIP_BAR_RANGE_ERROR}, got {raw!r}"
    return value, None


def judge_promotion_context(*, project: Project, judge: Judge, versions: list[JudgeVersion]) -> dict[str, Any]:
    """The judge page's promotion block, as template context; each version shown gets its `promotion_state`."""
    states = judge_promotion_states(project=project, judge=judge, versions=versions)
    for version in versions:
        # The template walks the versions; it cannot index a dict by number.
        version.promotion_state = states.version_promotions[version.number]
    return {
        "criterion_promotion": states.criterion_promotion,
        "version_promotions": states.version_promotions,
        "bar": states.bar,
        "promotion_rule": RULE,
    }


# --- views ---------------------------------------------------------------------------------------------------------


@login_required
@require_POST
def judge_version_promote_view(request: HttpRequest, slug: str, judge_id: int, number: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.PROMOTE_JUDGES)
    judge = access.get_object_or_404(Judge.objects.select_related("criterion"), pk=judge_id)
    version = get_object_or_404(JudgeVersion, judge=judge, number=number)
    comment = request.POST.get("comment", "").strip()[:COMMENT_MAX_CHARS]
    try:
        judge_version_promote(version=version, user=request.user, comment=comment)
    except PromotionRefused as exc:
        messages.error(request, f"{version} was not promoted. {exc}")
    else:
        messages.success(request, f"{version} is now the promoted judge for {judge.criterion.name}.")
    return redirect("judge_detail", slug, judge.pk)


@login_required
@require_POST
def promotion_withdraw_view(request: HttpRequest, slug: str, criterion_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.PROMOTE_JUDGES)
    criterion = access.get_object_or_404(Criterion, pk=criterion_id)
    ended = promotion_withdraw(criterion=criterion, user=request.user)
    if ended is None:
        messages.info(request, f"{criterion.name} had no promoted judge.")
    else:
        messages.success(request, f"Promotion of {ended.version} withdrawn: {criterion.name} has no promoted judge.")
    back = request.POST.get("next", "")
    if back.isdigit() and Judge.objects.filter(pk=int(back), project=access.project).exists():
        return redirect("judge_detail", slug, int(back))
    return redirect("judge_list", slug)


@login_required
@require_POST
def promotion_bar_update(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.SET_PROMOTION_BAR)
    project = access.project
    min_tpr, tpr_error = parse_bar_value("min_tpr", request.POST.get("min_tpr", ""))
    min_tnr, tnr_error = parse_bar_value("min_tnr", request.POST.get("min_tnr", ""))
    max_flip_rate, flip_error = parse_flip_value(request.POST.get("max_flip_rate", ""))
    errors = [e for e in (tpr_error, tnr_error, flip_error) if e]
    if errors:
        for error in errors:
            messages.error(request, f"Promotion bar not changed. {error}")
        return redirect(f"{_judges_url(slug)}#promotion-bar")
    try:
        promotion_bar_set(
            project=project, min_tpr=min_tpr, min_tnr=min_tnr, user=request.user, max_flip_rate=max_flip_rate
        )
    except DomainError as exc:
        messages.error(request, f"Promotion bar not changed. {exc}")
    else:
        messages.success(
            request,
            f"Bar: TPR ≥ {min_tpr:.0%}, TNR ≥ {min_tnr:.0%}, for alignment, the cost ladder and promotion."
            + ("" if max_flip_rate is None else f" Bias bar: flip rate ≤ {flip_percent(max_flip_rate)}."),
        )
    return redirect(f"{_judges_url(slug)}#promotion-bar")


def _judges_url(slug: str) -> str:
    return reverse("judge_list", args=[slug])


@login_required
@require_GET
def promotion_history(request: HttpRequest, slug: str) -> HttpResponse:
    """Every promotion of the project, newest first (capped): who promoted which version, on what test evidence
    (its dev run beside it) under which bar, and when and by whom it ended."""
    access = get_project_for_user(request, slug)
    history = promotion_history_page(project=access.project, limit=HISTORY_LIMIT)
    # A current promotion whose version was made under an earlier definition: its evidence answered other words.
    drifts = versions_drift(p.version_id for p in history.promotions if p.is_current)
    for promotion in history.promotions:
        promotion.drift = drifts.get(promotion.version_id) if promotion.is_current else None
    context = {
        "project": access.project,
        "access": access,
        "promotions": history.promotions,
        "capped": history.capped,
        "limit": HISTORY_LIMIT,
        "promotion_rule": RULE,
    }
    return render(request, "judges/promotions.html", context)
