"""Blind re-review (annotation.rereviews): the page the queue re-serves an old trace on, the expert's decision
where a re-review differs from the earlier label, and the expert's re-review settings.

The page shows the trace and nothing anyone said about it — no labels, critiques, notes, users' feedback, judges
or panels — and asks each criterion the expert had labelled. Every post answers with a redirect to `next` (the
queue step the re-review interrupted, or the page the decision was made on), kept to this site.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.models import Criterion, SelfReview, Trace
from annotation.rendering import trace_pane
from annotation.rereviews import Answer, expert_labelled_criteria, rereview_settings_update, rereview_submit
from annotation.rereviews import self_review_decide as self_review_decide_service
from annotation.services import DomainError

TEMPLATE = "annotation/rereview.html"


def _next(request: HttpRequest, access: ProjectAccess) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return target
    return reverse("review_queue", args=[access.project.slug])


def posted_answers(request: HttpRequest, criteria: list[Criterion]) -> dict[int, Answer]:
    """Criterion id → the verdict and critique a blind form (`annotation/_blind_criteria.html`) posted for it; a
    criterion without a verdict is left out, for the service to name."""
    return {
        criterion.pk: Answer(
            verdict=request.POST.get(f"verdict-{criterion.pk}", ""),
            critique=request.POST.get(f"critique-{criterion.pk}", ""),
        )
        for criterion in criteria
        if request.POST.get(f"verdict-{criterion.pk}")
    }


def _require_expert(access: ProjectAccess, request: HttpRequest) -> None:
    if access.project.expert_id != request.user.pk:
        raise PermissionDenied("Only the project's expert re-reviews their own labels")


@login_required
@require_http_methods(["GET", "POST"])
def rereview(request: HttpRequest, slug: str, trace_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.LABEL)
    _require_expert(access, request)
    project = access.project
    trace = get_object_or_404(Trace.objects.select_related("project"), project=project, pk=trace_id)
    criteria = expert_labelled_criteria(trace=trace)
    errors: list[str] = []
    if request.method == "POST":
        try:
            rereview_submit(trace=trace, user=request.user, answers=posted_answers(request, criteria))
        except DomainError as exc:
            errors.append(str(exc))
        else:
            messages.success(request, "Re-review saved beside your earlier labels; on to the queue.")
            return HttpResponseRedirect(_next(request, access))
    context = {
        "project": project,
        "access": access,
        "trace": trace,
        "criteria": criteria,
        "errors": errors,
        "next": _next(request, access),
        **trace_pane(trace),
    }
    return render(request, TEMPLATE, context, status=400 if errors else 200)


@login_required
@require_POST
def self_review_decide(request: HttpRequest, slug: str, review_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.LABEL)
    review = get_object_or_404(SelfReview, pk=review_id, trace__project=access.project)
    try:
        self_review_decide_service(
            review=review, keep=request.POST.get("keep", ""), reason=request.POST.get("reason", ""), user=request.user
        )
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Decided; the reason is kept with the re-review.")
    return HttpResponseRedirect(_next(request, access))


@login_required
@require_POST
def rereview_settings(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    try:
        rate = float(request.POST.get("rate_percent", "")) / 100
        after_days = int(request.POST.get("after_days", ""))
    except ValueError:
        messages.error(request, "Re-review rate and days must be numbers.")
    else:
        try:
            rereview_settings_update(project=access.project, user=request.user, rate=rate, after_days=after_days)
        except DomainError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(request, "Re-review settings saved.")
    return redirect(_next(request, access))
