"""Review sessions: the list with what each session found, the form that picks one, and one session's traces.

Any member may look; experts and engineers may create sessions (viewers get 403). Reviewing a session happens in
the ordinary review queue with `?session=<id>`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.models import ReviewSession
from annotation.queue import QueueParams, decode_cursor
from annotation.selectors import relabel_drift, review_session_items_page, review_sessions_page
from annotation.services import DomainError
from annotation.sessions import (
    DEFAULT_SIZE,
    DISAGREEMENTS_FROM_A_RUN,
    MAX_SIZE,
    METADATA_KEY_MAX_CHARS,
    MIN_SIZE,
    NAME_MAX_CHARS,
    RECALIBRATION_FROM_A_CRITERION,
    SEED_MAX_CHARS,
    describe_params,
    review_session_create,
    session_new_mode_names,
    session_summaries,
)

LIST_TEMPLATE = "annotation/session_list.html"
SESSIONS_PER_PAGE = 25
ITEMS_PER_PAGE = 100
SIZE_ERROR = f"The session size must be a whole number from {MIN_SIZE} to {MAX_SIZE}."


class SessionForm(forms.Form):
    """Validation of the create form; the service re-checks everything and explains what the form cannot."""

    strategy = forms.ChoiceField(
        choices=ReviewSession.Strategy.choices,
        initial=ReviewSession.Strategy.RANDOM,
        error_messages={"invalid_choice": "Unknown strategy “%(value)s”; choose one of the strategies listed."},
    )
    size = forms.IntegerField(
        min_value=MIN_SIZE,
        max_value=MAX_SIZE,
        initial=DEFAULT_SIZE,
        error_messages={"invalid": SIZE_ERROR, "min_value": SIZE_ERROR, "max_value": SIZE_ERROR},
    )
    name = forms.CharField(max_length=NAME_MAX_CHARS, required=False)
    seed = forms.CharField(max_length=SEED_MAX_CHARS, required=False)
    include_reviewed = forms.BooleanField(required=False)
    metadata_key = forms.CharField(max_length=METADATA_KEY_MAX_CHARS, required=False)
    proportional = forms.BooleanField(required=False)
    source = forms.CharField(max_length=64, required=False)
    meta = forms.CharField(max_length=700, required=False)

    def clean_meta(self) -> str:
        meta = self.cleaned_data["meta"].strip()
        if meta and ("=" not in meta or not meta.partition("=")[0].strip()):
            raise forms.ValidationError("Write the metadata filter as key=value, e.g. locale=de.")
        return meta


def _list_context(request: HttpRequest, access: ProjectAccess, form: SessionForm | None) -> dict[str, Any]:
    project = access.project
    before = decode_cursor(request.GET.get("before", ""))
    page = review_sessions_page(project=project, before=before, size=SESSIONS_PER_PAGE)
    summaries = session_summaries(project=project, sessions=page.sessions)
    last = page.sessions[-1] if page.sessions else None
    return {
        "project": project,
        "access": access,
        "rows": [(summary, describe_params(summary.session)) for summary in summaries],
        "older": f"{last.created_at.isoformat()}~{last.pk}" if last and page.has_more else "",
        "paged": before is not None,
        "can_create": access.can(Permission.CREATE_SESSIONS),
        "form": form if form is not None else SessionForm(),
        "strategies": ReviewSession.Strategy.choices,
        "disagreements": ReviewSession.Strategy.DISAGREEMENTS,
        "disagreements_help": DISAGREEMENTS_FROM_A_RUN,
        "recalibration": ReviewSession.Strategy.RECALIBRATION,
        "recalibration_help": RECALIBRATION_FROM_A_CRITERION,
    }


@login_required
@require_GET
def session_list(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    template = LIST_TEMPLATE + "#sessions" if request.htmx else LIST_TEMPLATE
    return render(request, template, _list_context(request, access, None))


@login_required
@require_POST
def session_create(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.CREATE_SESSIONS)
    form = SessionForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        filters = QueueParams.from_query({"source": data["source"], "meta": data["meta"]})
        try:
            created = review_session_create(
                project=access.project,
                created_by=request.user,
                strategy=data["strategy"],
                size=data["size"],
                name=data["name"],
                seed=data["seed"],
                include_reviewed=data["include_reviewed"],
                metadata_key=data["metadata_key"],
                proportional=data["proportional"],
                filters=filters,
            )
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            session = created.session
            if created.shortfall_message:
                messages.warning(request, created.shortfall_message)
            else:
                messages.success(request, f"Session “{session.name}” holds {session.size} traces.")
            return redirect("session_detail", slug, session.pk)
    return render(request, LIST_TEMPLATE, _list_context(request, access, form), status=400)


@login_required
@require_GET
def session_detail(request: HttpRequest, slug: str, session_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    session = access.get_object_or_404(ReviewSession.objects.select_related("created_by"), pk=session_id)
    after = request.GET.get("after", "")
    start = int(after) if after.isascii() and after.isdigit() and len(after) < 10 else 0
    page = review_session_items_page(session=session, after_position=start, size=ITEMS_PER_PAGE)
    reviewed = page.reviewed
    context = {
        "project": project,
        "access": access,
        "session": session,
        "reviewed": reviewed,
        "percent": min(100, int(100 * reviewed / session.size)) if session.size else 0,
        "description": describe_params(session),
        "new_modes": session_new_mode_names(project=project, session=session),
        "items": page.items,
        "next_after": page.items[-1].position if page.items and page.has_more else None,
        "paged": start > 0,
        "session_qs": QueueParams(session=session.pk).querystring,
        "review_url": reverse("review_queue", args=[slug]) + QueueParams(session=session.pk).querystring,
        "drift": relabel_drift(project=project, session=session) if session.relabels_blind else [],
    }
    return render(request, "annotation/session_detail.html", context)
