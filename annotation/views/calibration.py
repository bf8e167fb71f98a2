"""The calibration rater's pages (annotation.calibration): the next sampled trace, shown blind, and the expert's
invitation. The rater sees the trace and nothing anyone said about it, like the expert's blind re-review."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from annotation.access import get_project_for_user
from annotation.calibration import (
    calibration_next,
    calibration_progress,
    calibration_submit,
    rater_end,
    rater_for,
    rater_invite,
)
from annotation.models import CalibrationRater, Trace
from annotation.rendering import trace_pane
from annotation.rereviews import expert_labelled_criteria
from annotation.services import DomainError
from annotation.views.rereview import posted_answers


def _back(request: HttpRequest, slug: str) -> HttpResponse:
    """To the page the form was on (kept to this site), else the project page."""
    target = request.POST.get("next", "")
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        return HttpResponseRedirect(target)
    return redirect("project_detail", slug)


@login_required
@require_http_methods(["GET", "POST"])
def calibration(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: the rater's next sampled trace, blind; POST: their answers on it, then the next."""
    access = get_project_for_user(request, slug)
    project = access.project
    rater = rater_for(project=project, user=request.user)
    if rater is None:
        raise Http404("You are not a calibration rater of this project")
    errors: list[str] = []
    if request.method == "POST":
        trace = get_object_or_404(Trace, project=project, pk=request.POST.get("trace", "0") or 0)
        answers = posted_answers(request, expert_labelled_criteria(trace=trace))
        try:
            calibration_submit(rater=rater, trace=trace, answers=answers)
        except DomainError as exc:
            errors.append(str(exc))
        else:
            return redirect("calibration", slug)
    else:
        trace = calibration_next(rater=rater)
    done, total = calibration_progress(rater=rater)
    context = {"project": project, "access": access, "trace": trace, "errors": errors, "done": done, "total": total}
    if trace is not None:
        context.update(criteria=expert_labelled_criteria(trace=trace), **trace_pane(trace))
    return render(request, "annotation/calibration.html", context, status=400 if errors else 200)


@login_required
@require_POST
def calibration_invite(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    user = get_user_model().objects.filter(username=request.POST.get("username", "").strip()).first()
    try:
        if user is None:
            raise DomainError(f"No user named {request.POST.get('username', '')!r}.")
        size = int(request.POST.get("sample_size") or 50)
        rater_invite(project=project, expert=request.user, user=user, sample_size=size)
    except ValueError:
        messages.error(request, "Sample size: a whole number.")
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"{user.get_username()} will see a “Calibration” link and label {size} traces blind.")
    return _back(request, slug)


@login_required
@require_POST
def calibration_end(request: HttpRequest, slug: str, rater_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    rater = get_object_or_404(CalibrationRater, project=access.project, pk=rater_id)
    try:
        rater_end(rater=rater, expert=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
    return _back(request, slug)
