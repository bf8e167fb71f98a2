"""The expert's reliability page: fatigue by position in a sitting and drift per criterion (judges.reliability)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.access import get_project_for_user
from judges.reliability import drift, fatigue


@login_required
@require_GET
def reliability(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    context = {
        "project": project,
        "access": access,
        "fatigue": fatigue(project=project),
        "drift": drift(project=project),
    }
    return render(request, "judges/reliability.html", context)
