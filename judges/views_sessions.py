"""Turning a judge run's disagreements into a review session."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from annotation.access import Permission, get_project_for_user
from annotation.services import DomainError
from judges.models import JudgeRun
from judges.review_sessions import disagreement_session_create


@login_required
@require_POST
def disagreement_session_create_view(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.CREATE_SESSIONS)
    run = access.get_object_or_404(
        JudgeRun.objects.select_related("version__judge__criterion"), via="version__judge__project", pk=run_id
    )
    kind = request.POST.get("kind") or None
    try:
        session = disagreement_session_create(run=run, created_by=request.user, kind=kind)
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect("judge_run_detail", slug, run.pk)
    messages.success(request, f"Session “{session.name}” holds {session.size} disagreements to revisit.")
    return redirect("session_detail", slug, session.pk)
