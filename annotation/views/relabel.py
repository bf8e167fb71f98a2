"""Blind re-review in a disagreement session: the blind label, then the decision (annotation.relabels).

Both are plain form posts from the review page, each answered with a redirect: after the blind label to the same
trace, which the next GET renders with the earlier label and the judge revealed; after the decision to the
session's next trace. Only the expert may post (403 for teammates, 404 for outsiders and for a trace that is not
in the session named by `?session=`).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from annotation.access import Permission, get_project_for_user
from annotation.models import Project, ReviewSessionTrace, Trace
from annotation.queue import QueueParams, queue_next
from annotation.relabels import relabel_blind, relabel_decide
from annotation.selectors import review_session_item, session_item_relabel
from annotation.services import DomainError


def _item(project: Project, params: QueueParams, trace_id: int) -> ReviewSessionTrace:
    trace = get_object_or_404(Trace.objects.select_related("project"), project=project, pk=trace_id)
    item = review_session_item(session_id=params.session, trace=trace) if params.session else None
    if item is None or item.session.project_id != project.pk:
        raise Http404("The trace is not in this review session")
    item.trace = trace
    return item


def _trace_url(project: Project, item: ReviewSessionTrace, params: QueueParams) -> str:
    return reverse("trace_detail", args=[project.slug, item.trace.external_id]) + params.querystring


@login_required
@require_POST
def relabel_blind_view(request: HttpRequest, slug: str, trace_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.LABEL)
    project = access.project
    params = QueueParams.from_query(request.GET)
    item = _item(project, params, trace_id)
    try:
        relabel_blind(
            item=item,
            verdict=request.POST.get("verdict", ""),
            critique=request.POST.get("critique", "").strip(),
            user=request.user,
        )
    except DomainError as exc:
        messages.error(request, str(exc))
    return redirect(_trace_url(project, item, params))


@login_required
@require_POST
def relabel_decide_view(request: HttpRequest, slug: str, trace_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.LABEL)
    project = access.project
    params = QueueParams.from_query(request.GET)
    item = _item(project, params, trace_id)
    relabel = session_item_relabel(item=item)
    if relabel is None:
        messages.error(request, "Label the trace blind first; the labels to choose from are shown after that.")
        return redirect(_trace_url(project, item, params))
    try:
        relabel_decide(
            relabel=relabel, keep=request.POST.get("keep", ""), reason=request.POST.get("reason", ""), user=request.user
        )
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect(_trace_url(project, item, params))
    found = queue_next(project=project, params=params, current=item.trace)
    if found is None:
        return redirect(reverse("review_queue", args=[slug]) + params.querystring)
    return redirect(reverse("trace_detail", args=[project.slug, found]) + params.querystring)
