"""Promotion in the browser: promote or withdraw a judge version, the project's bar, and the record of promotions.

Who may do what: the expert and engineers promote and withdraw (they build and run judges; promotion itself is
guarded by evidence, the dev run against the bar, so it needs no further authority). Only the expert sets the bar,
because the bar says how closely a judge must agree with the expert's own labels. Viewers see everything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.access import Permission, get_project_for_user
from annotation.models import Criterion, Project
from annotation.services import DomainError
from judges.models import Judge, JudgeRun, JudgeVersion, Promotion, PromotionBar
from judges.promotions import (
    PromotionRefused,
    current_promotions,
    eligibility,
    judge_version_promote,
    promotion_bar,
    promotion_withdraw,
)

# The bar must be better than a coin: at 0.5 a judge that always says "pass" would clear the TNR half of it.
BAR_MIN_EXCLUSIVE, BAR_MAX = 0.5, 1.0
HISTORY_LIMIT = 200
COMMENT_MAX_CHARS = 2000


# --- the bar -------------------------------------------------------------------------------------------------------


def parse_bar_value(name: str, raw: str) -> tuple[float | None, str | None]:
    """A bar value from a form: a fraction in (0.5, 1] ("0.9"), or a percentage ("90%"). Returns (value, error)."""
    text = raw.strip()
    percent = text.endswith("%")
    try:
        value = float(text.rstrip("%").strip())
    except ValueError:
        return None, f"{name}: expected a number in (0.5, 1] such as 0.9, got {raw!r}"
    if percent:
        value /= 100
    if not math.isfinite(value) or not BAR_MIN_EXCLUSIVE < value <= BAR_MAX:
        return None, f"{name}: must be above 0.5 and at most 1 (a judge must beat a coin), got {raw!r}"
    return value, None


@transaction.atomic
def project_promotion_bar_set(*, project: Project, min_tpr: float, min_tnr: float) -> Project:
    """Sets the TPR and TNR a version's dev run must reach to be promoted. Current promotions keep the bar they were
    promoted under (it is on their record); the judges page warns about any now under the new bar."""
    for name, value in (("min_tpr", min_tpr), ("min_tnr", min_tnr)):
        if not BAR_MIN_EXCLUSIVE < value <= BAR_MAX:
            raise DomainError(f"{name}: must be above 0.5 and at most 1, got {value} for project {project.slug!r}")
    PromotionBar.objects.update_or_create(project=project, defaults={"min_tpr": min_tpr, "min_tnr": min_tnr})
    return project


# --- what the pages show -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionPromotion:
    """A criterion's current promotion and whether the promoted version's latest dev run still meets the bar."""

    promotion: Promotion | None
    # Set when the promoted version's latest dev run no longer meets the (current) bar: a warning, not a demotion.
    warning: str = ""


def criterion_promotion(promotion: Promotion | None) -> CriterionPromotion:
    if promotion is None:
        return CriterionPromotion(promotion=None)
    check = eligibility(promotion.version)
    warning = ""
    if not check.eligible:
        warning = f"Promoted, but its latest dev run is under the bar: {check.reason}"
    return CriterionPromotion(promotion=promotion, warning=warning)


def criterion_promotions(*, project: Project) -> dict[int, CriterionPromotion]:
    """criterion id → its promotion state, for the judges page: one query for the promotions and one per promoted
    criterion (its version's latest dev run), so bounded by the number of criteria, not of traces or runs."""
    promotions = current_promotions(project=project)
    for promotion in promotions.values():
        promotion.version.judge.project = project  # eligibility reads the bar from here; spare the query
    return {criterion_id: criterion_promotion(p) for criterion_id, p in promotions.items()}


@dataclass(frozen=True)
class VersionPromotion:
    number: int
    eligible: bool
    reason: str
    is_current: bool


def judge_promotion_context(*, project: Project, judge: Judge, versions: list[JudgeVersion]) -> dict[str, Any]:
    """The judge page's promotion block: the criterion's current promotion (perhaps another judge's version) and,
    per version shown, whether it may be promoted or why not."""
    promotion = (
        Promotion.objects.filter(criterion_id=judge.criterion_id, ended_at=None)
        .select_related("version__judge__project", "promoted_by")
        .first()
    )
    judge.project = project
    states = {}
    for version in versions:
        version.judge = judge  # eligibility reads judge.kind and the project's bar: no query per version for them
        check = eligibility(version)
        state = VersionPromotion(
            number=version.number,
            eligible=check.eligible,
            reason=check.reason,
            is_current=promotion is not None and promotion.version_id == version.pk,
        )
        states[version.number] = state
        version.promotion_state = state  # the template walks the versions; it cannot index a dict by number
    return {
        "criterion_promotion": criterion_promotion(promotion),
        "version_promotions": states,
        "bar": promotion_bar(project=project),
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
    errors = [e for e in (tpr_error, tnr_error) if e]
    if errors:
        for error in errors:
            messages.error(request, f"Promotion bar not changed. {error}")
        return redirect(f"{_judges_url(slug)}#promotion-bar")
    try:
        project_promotion_bar_set(project=project, min_tpr=min_tpr, min_tnr=min_tnr)
    except DomainError as exc:
        messages.error(request, f"Promotion bar not changed. {exc}")
    else:
        messages.success(request, f"Promotion bar: TPR ≥ {min_tpr:.0%}, TNR ≥ {min_tnr:.0%} on dev.")
    return redirect(f"{_judges_url(slug)}#promotion-bar")


def _judges_url(slug: str) -> str:
    return reverse("judge_list", args=[slug])


@login_required
@require_GET
def promotion_history(request: HttpRequest, slug: str) -> HttpResponse:
    """Every promotion of the project, newest first (capped): who promoted which version, on what dev evidence
    under which bar, and when and by whom it ended."""
    access = get_project_for_user(request, slug)
    promotions = list(
        Promotion.objects.filter(criterion__project=access.project)
        .select_related("criterion", "version__judge", "promoted_by", "ended_by", "dev_run")
        .order_by("-promoted_at", "-id")[: HISTORY_LIMIT + 1]
    )
    capped = len(promotions) > HISTORY_LIMIT
    context = {
        "project": access.project,
        "access": access,
        "promotions": promotions[:HISTORY_LIMIT],
        "capped": capped,
        "limit": HISTORY_LIMIT,
        "dev_split": JudgeRun.Split.DEV,
    }
    return render(request, "judges/promotions.html", context)
