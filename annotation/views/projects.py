from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.access import get_project_for_user
from annotation.calibration import rater_for
from annotation.panels import panels_render
from annotation.queue import QueueParams, queue_progress
from annotation.selectors import criteria_with_label_counts, project_list_with_role, recent_import_jobs

RECENT_IMPORTS = 5


@login_required
def project_list(request: HttpRequest) -> HttpResponse:
    projects = project_list_with_role(user=request.user)
    return render(request, "annotation/project_list.html", {"projects": projects})


@login_required
def project_detail(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    criteria = criteria_with_label_counts(project=project)
    # The queue's counts: the total is cached briefly on large projects, the reviewed count is an index-only scan.
    progress = queue_progress(project=project, params=QueueParams())
    context = {
        "project": project,
        "access": access,
        "trace_count": progress.total,
        "reviewed_count": progress.reviewed,
        "criteria": criteria,
        "import_jobs": recent_import_jobs(project=project, limit=RECENT_IMPORTS),
        # The expert asked this member to label a sample blind (annotation.calibration).
        "calibration": rater_for(project=project, user=request.user),
    }
    context["panels"] = panels_render(slot="project", request=request, context=context)
    return render(request, "annotation/project_detail.html", context)
