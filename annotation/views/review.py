"""The review page: the queue, the trace list, one trace with its labels and notes.

Every view starts with `get_project_for_user` (404 for outsiders, before anything else is looked up). Writes go
through services; only the expert may label or mark reviewed (403 for teammates), any member may write notes and
edit or delete their own. Queue parameters ride along in the query string of every link and form.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.feedback_services import trace_feedback
from annotation.forms import LabelForm, NoteForm, SittingForm
from annotation.models import (
    Criterion,
    Note,
    Project,
    ReviewSessionTrace,
    Trace,
)
from annotation.otel.tree import trace_span_tree
from annotation.panels import panels_render
from annotation.queue import (
    QueueParams,
    queue_first,
    queue_next,
    queue_previous,
    queue_progress,
    trace_page,
)
from annotation.rendering import trace_pane
from annotation.rereviews import rereview_candidate, rereview_due
from annotation.selectors import (
    conversation_size,
    criteria_count,
    critiqued_label_counts,
    failure_mode_of,
    known_sources,
    label_history,
    last_reviewed_external_id,
    relabel_criterion,
    review_session_item,
    review_session_of,
    session_item_relabel,
    trace_criterion_row,
    trace_criterion_rows,
    trace_notes,
)
from annotation.services import DomainError, label_submit, note_create, note_update
from annotation.services import note_delete as note_delete_service
from annotation.services import trace_mark_reviewed as trace_mark_reviewed_service
from annotation.sessions import session_item_revisit
from annotation.sittings import opened_token, sitting_act, sitting_get, sitting_save, sitting_state

TEMPLATE = "annotation/trace_detail.html"
# Helpers ---------------------------------------------------------------------------------------------------------


def _trace_url(project: Project, external_id: str, params: QueueParams) -> str:
    return reverse("trace_detail", args=[project.slug, external_id]) + params.querystring


def _queue_params(request: HttpRequest, project: Project) -> QueueParams:
    """The queue parameters of the request; a `session` that is not one of the project's sessions is a 404."""
    params = QueueParams.from_query(request.GET)
    if params.session and review_session_of(project=project, session_id=params.session) is None:
        raise Http404("No such review session in this project")
    return params


def _maybe_rereview(request: HttpRequest, project: Project, params: QueueParams, target: str) -> str:
    """Where this queue step goes: `target`, or — at the project's re-review rate, for the expert outside review
    sessions (a session is a fixed list) — a trace labelled a while ago, served blind, and `target` after it."""
    if params.session or project.expert_id != request.user.pk:
        return target
    key = f"review_steps:{project.pk}"
    step = request.session.get(key, 0) + 1 if isinstance(request.session.get(key, 0), int) else 1
    request.session[key] = step
    if not rereview_due(project, step=step):
        return target
    candidate = rereview_candidate(project=project)
    if candidate is None:
        return target
    return reverse("rereview", args=[project.slug, candidate.pk]) + "?" + urlencode({"next": target})


def _rereview_next(request: HttpRequest, project: Project, params: QueueParams) -> bool:
    """Whether the expert's next queue step would be drawn for a re-review (read only; `_maybe_rereview` decides).
    The review page then waits for the server on `r` instead of showing the page it fetched ahead at once."""
    if params.session or project.expert_id != request.user.pk:
        return False
    step = request.session.get(f"review_steps:{project.pk}", 0)
    return rereview_due(project, step=(step if isinstance(step, int) else 0) + 1)


def _get_trace(project: Project, trace_id: int) -> Trace:
    return get_object_or_404(Trace.objects.select_related("project"), project=project, pk=trace_id)


def _base_context(request: HttpRequest, access: ProjectAccess, trace: Trace, params: QueueParams) -> dict[str, Any]:
    return {
        "project": access.project,
        "access": access,
        "trace": trace,
        "params": params,
        "qs": params.querystring,
        # Sent back with each label save: how long the trace was open (annotation.sittings).
        "opened": opened_token(),
    }


def _progress_context(request: HttpRequest, project: Project, params: QueueParams) -> dict[str, Any]:
    return {
        "progress": queue_progress(project=project, params=params),
        "sitting": sitting_get(request, project),
    }


# The review page's script asks for the next trace's page ahead (`X-Review-Prefetch`) and, on `r` or `j`, asks
# where to go (`X-Review-Swap`) so it can show the prefetched page without a full load (static/js/trace_review.js).
PREFETCH_HEADER = "X-Review-Prefetch"
SWAP_HEADER = "X-Review-Swap"


def _swap_answer(request: HttpRequest, project: Project, params: QueueParams, target: str) -> HttpResponse:
    """Where the queue step goes, for a page that shows a prefetched trace in place: the target in a header, a
    fresh `opened` token (the trace is open from now, when it is shown, not from when it was prefetched) and
    the progress bar as it is after this step."""
    response = HttpResponse(
        render_to_string(f"{TEMPLATE}#progress", {**_progress_context(request, project, params), "params": params})
    )
    response["X-Review-Location"] = target
    response["X-Opened-At"] = opened_token()
    response["X-Review-Rereview-Next"] = "1" if _rereview_next(request, project, params) else "0"
    response["Cache-Control"] = "no-store"
    return response


def _render_with_progress(
    request: HttpRequest, partial: str, context: dict[str, Any], project: Project, params: QueueParams
) -> HttpResponse:
    """An htmx answer: the swapped region plus the progress bar and review state, swapped out of band."""
    context = {**context, **_progress_context(request, project, params), "oob": True}
    html = render_to_string(f"{TEMPLATE}#{partial}", context, request=request)
    html += render_to_string(f"{TEMPLATE}#progress", context, request=request)
    return HttpResponse(html)


# Pages -----------------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def review_queue(request: HttpRequest, slug: str) -> HttpResponse:
    """GET: go to the first unreviewed trace in queue order, or show that the queue is done.
    POST: change the sitting's target or start a new sitting, then go back where the form was."""
    access = get_project_for_user(request, slug)
    project = access.project
    params = _queue_params(request, project)
    if request.method == "POST":
        form = SittingForm(request.POST)
        if not form.is_valid():
            messages.error(request, "The sitting target must be a whole number from 1 to 100000.")
            return redirect(reverse("review_queue", args=[slug]) + params.querystring)
        state = dict(sitting_state(request, project))
        if form.cleaned_data["restart"]:
            state["started"], state["last"] = timezone.now().isoformat(), None
        if form.cleaned_data["target"]:
            state["target"] = form.cleaned_data["target"]
        sitting_save(request, project, state)
        back = form.cleaned_data["next"]
        if back and url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
            return HttpResponseRedirect(back)
        return redirect(reverse("review_queue", args=[slug]) + params.querystring)
    first = queue_first(project=project, params=params)
    if first is not None:
        return redirect(_maybe_rereview(request, project, params, _trace_url(project, first, params)))
    context = {"project": project, "access": access, "params": params, "qs": params.querystring}
    context.update(_progress_context(request, project, params))
    context["last_reviewed"] = last_reviewed_external_id(project=project)
    context["sources"] = known_sources(project=project)
    context["session"] = review_session_of(project=project, session_id=params.session) if params.session else None
    return render(request, "annotation/review_done.html", context)


@login_required
@require_GET
def trace_list(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    params = QueueParams.from_query(request.GET, default_order="newest")
    page = trace_page(
        project=project, params=params, after=request.GET.get("after", ""), before=request.GET.get("before", "")
    )
    failure_mode = failure_mode_of(project_id=project.pk, mode_id=params.failure_mode) if params.failure_mode else None
    context = {
        "project": project,
        "access": access,
        "params": params,
        "failure_mode": failure_mode,
        "qs": params.querystring,
        "page": page,
        "criteria_count": criteria_count(project=project),
        "sources": known_sources(project=project),
    }
    template = "annotation/trace_list.html"
    if request.htmx:
        template += "#results"
    return render(request, template, context)


def _relabel_context(item: ReviewSessionTrace | None) -> dict[str, Any]:
    """Where a disagreement session's item stands: "blind" (label it again, seeing neither the earlier label nor
    the judge), "decide" (both revealed beside the blind label) or "decided"; nothing outside such a session."""
    if item is None or not item.session.relabels_blind:
        return {}
    relabel = session_item_relabel(item=item)
    if relabel is None:
        return {"relabel_step": "blind", "relabel_criterion": relabel_criterion(item=item)}
    return {"relabel_step": "decided" if relabel.is_decided else "decide", "relabel": relabel}


@login_required
@require_GET
def trace_detail(request: HttpRequest, slug: str, external_id: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    trace = access.get_object_or_404(Trace.objects.select_related("project"), external_id=external_id)
    params = _queue_params(request, project)
    context = _base_context(request, access, trace, params)
    context.update(_progress_context(request, project, params))
    session_item = review_session_item(session_id=params.session, trace=trace) if params.session else None
    relabel = _relabel_context(session_item)
    step = relabel.get("relabel_step")
    if relabel and request.headers.get(PREFETCH_HEADER):
        # A disagreement session's page is never fetched ahead: its step (blind, decide) is what the expert has
        # done by the time it is shown, and nothing about the trace should sit in the browser before then.
        return HttpResponse(status=204)
    # Blind means the page holds nothing the expert said or a judge said about this trace: no labels (of any
    # criterion), no history, no notes, no panels. Deciding reveals the notes; the labels follow the decision.
    context.update(
        {
            **trace_pane(trace),
            "rows": trace_criterion_rows(trace=trace) if step not in ("blind", "decide") else [],
            "notes": trace_notes(trace=trace) if step != "blind" else [],
            # Users' thumbs, ratings and comments; hidden while the expert relabels blind, like every verdict.
            "feedback": list(trace_feedback(trace)) if step != "blind" else [],
            "note_form": NoteForm(),
            "session_item": session_item,
            # OTel traces (the OTLP receiver): the spans as a waterfall beside the conversation. One query.
            "span_tree": trace_span_tree(trace=trace),
            # Traces sharing the session id read as one conversation (linked from the session id).
            "conversation_size": conversation_size(trace=trace),
            # The queue filter's suggestions (_review_filters.html names their datalist); cached, rarely a query.
            "sources": known_sources(project=project),
            **relabel,
        }
    )
    context["panels"] = panels_render(slot="review", request=request, context=context) if step != "blind" else []
    context["rereview_next"] = _rereview_next(request, project, params)
    return render(request, TEMPLATE, context)


@login_required
@require_GET
def trace_next(request: HttpRequest, slug: str, trace_id: int) -> HttpResponse:
    """`j`: the next unreviewed trace after this one in queue order (wrapping); the queue page when none is left."""
    access = get_project_for_user(request, slug)
    project = access.project
    trace = _get_trace(project, trace_id)
    params = _queue_params(request, project)
    found = queue_next(project=project, params=params, current=trace)
    target = _trace_url(project, found, params) if found else reverse("review_queue", args=[slug]) + params.querystring
    if request.headers.get(SWAP_HEADER):
        return _swap_answer(request, project, params, target)
    return redirect(target)


@login_required
@require_GET
def trace_previous(request: HttpRequest, slug: str, trace_id: int) -> HttpResponse:
    """`k`: the trace reviewed just before this one, stepping back through the review log."""
    access = get_project_for_user(request, slug)
    project = access.project
    trace = _get_trace(project, trace_id)
    params = _queue_params(request, project)
    found = queue_previous(project=project, current=trace, params=params)
    if found is None:
        messages.info(request, "Nothing was reviewed before this trace.")
        return redirect(_trace_url(project, trace.external_id, params))
    return redirect(_trace_url(project, found, params))


# Writes ----------------------------------------------------------------------------------------------------------


@login_required
@require_POST
def trace_mark_reviewed(request: HttpRequest, slug: str, trace_id: int) -> HttpResponse:
    """`r`: a trace that needs no label leaves the queue; then on to the next one."""
    access = get_project_for_user(request, slug, Permission.LABEL)
    project = access.project
    trace = _get_trace(project, trace_id)
    params = _queue_params(request, project)
    sitting_act(request, project, trace, params)
    trace_mark_reviewed_service(trace=trace, user=request.user)
    session_item_revisit(project=project, session_id=params.session, trace=trace)
    found = queue_next(project=project, params=params, current=trace)
    target = _trace_url(project, found, params) if found else reverse("review_queue", args=[slug]) + params.querystring
    if found:
        target = _maybe_rereview(request, project, params, target)
    if request.headers.get(SWAP_HEADER):
        return _swap_answer(request, project, params, target)
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = target
        return response
    return redirect(target)


@login_required
@require_POST
def label_save(request: HttpRequest, slug: str, trace_id: int, criterion_id: int) -> HttpResponse:
    """Autosave of one criterion: a pass/fail click or a pause in typing the critique."""
    access = get_project_for_user(request, slug, Permission.LABEL)
    project = access.project
    trace = _get_trace(project, trace_id)
    criterion = access.get_object_or_404(Criterion, pk=criterion_id)
    params = QueueParams.from_query(request.GET)
    row = trace_criterion_row(trace=trace, criterion=criterion)
    label = row.label
    status = 200
    form = LabelForm(request.POST)
    if not form.is_valid():
        row.status, row.status_kind, status = "; ".join(m for e in form.errors.values() for m in e), "error", 400
    else:
        verdict = form.cleaned_data["verdict"] or (label.verdict if label else "")
        critique = form.cleaned_data["critique"]
        if not verdict:
            # Nothing to attach the critique to yet. The text stays in the textarea (it is never swapped).
            if critique:
                row.status, row.status_kind = "Choose pass or fail to save this critique", "unsaved"
        else:
            try:
                row.label = label_submit(
                    trace=trace,
                    criterion=criterion,
                    verdict=verdict,
                    critique=critique,
                    user=request.user,
                    context=sitting_act(request, project, trace, params),
                )
                row.history = label_history(labels=[row.label]).get(row.label.pk, [])
                row.critiqued = critiqued_label_counts(project=project).get(criterion.pk, 0)
                session_item_revisit(project=project, session_id=params.session, trace=trace)
                row.status = f"Saved {timezone.localtime():%H:%M:%S}"
                row.status_kind = "saved"
            except DomainError as exc:
                row.status, row.status_kind, status = str(exc), "error", 400
    if not request.htmx:
        if row.status_kind == "error":
            messages.error(request, row.status)
        elif row.status_kind == "unsaved":
            messages.info(request, row.status)
        return redirect(_trace_url(project, trace.external_id, params))
    context = {**_base_context(request, access, trace, params), "row": row}
    response = _render_with_progress(request, "verdict", context, project, params)
    # htmx swaps only 2xx by default; an error is shown in the status line, so answer 200 with the message.
    response.status_code = 200 if status == 400 else status
    return response


def _notes_response(
    request: HttpRequest, access: ProjectAccess, trace: Trace, params: QueueParams, **extra: Any
) -> HttpResponse:
    if not request.htmx:
        if extra.get("note_error"):
            messages.error(request, extra["note_error"])
        return redirect(_trace_url(access.project, trace.external_id, params))
    context = {**_base_context(request, access, trace, params), "notes": trace_notes(trace=trace), **extra}
    return _render_with_progress(request, "notes", context, access.project, params)


@login_required
@require_POST
def note_add(request: HttpRequest, slug: str, trace_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    trace = _get_trace(access.project, trace_id)
    params = QueueParams.from_query(request.GET)
    form = NoteForm(request.POST)
    text = request.POST.get("text", "")
    if not form.is_valid():
        return _notes_response(request, access, trace, params, note_error="A note cannot be empty.", note_draft=text)
    try:
        note_create(trace=trace, author=request.user, text=form.cleaned_data["text"])
    except DomainError as exc:
        return _notes_response(request, access, trace, params, note_error=str(exc), note_draft=text)
    if access.can(Permission.LABEL):
        session_item_revisit(project=access.project, session_id=params.session, trace=trace)
    return _notes_response(request, access, trace, params)


def _own_note(request: HttpRequest, access: ProjectAccess, note_id: int) -> Note:
    note = access.get_object_or_404(Note.objects.select_related("trace__project"), via="trace__project", pk=note_id)
    if note.author_id != request.user.pk:
        raise PermissionDenied("Only the author can change a note.")
    return note


@login_required
@require_POST
def note_edit(request: HttpRequest, slug: str, note_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    note = _own_note(request, access, note_id)
    params = QueueParams.from_query(request.GET)
    form = NoteForm(request.POST)
    if not form.is_valid():
        return _notes_response(request, access, note.trace, params, note_error="A note cannot be empty.")
    try:
        note_update(note=note, user=request.user, text=form.cleaned_data["text"])
    except DomainError as exc:
        return _notes_response(request, access, note.trace, params, note_error=str(exc))
    return _notes_response(request, access, note.trace, params)


@login_required
@require_POST
def note_delete(request: HttpRequest, slug: str, note_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    note = _own_note(request, access, note_id)
    trace = note.trace
    params = QueueParams.from_query(request.GET)
    note_delete_service(note=note, user=request.user)
    return _notes_response(request, access, trace, params)
