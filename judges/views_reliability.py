"""The expert's reliability page: self-agreement from blind re-reviews (with the differing pairs to decide), fatigue
by position in a sitting and drift per criterion (judges.reliability)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.access import get_project_for_user
from annotation.calibration import calibration_progress
from annotation.models import CalibrationRater, Membership
from judges.charts import fatigue_chart
from judges.reliability import drift, fatigue, rater_agreement, self_agreement


@login_required
@require_GET
def reliability(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    rows = fatigue(project=project)
    context = {
        "project": project,
        "access": access,
        "fatigue": rows,
        "chart": fatigue_chart(rows),
        "drift": drift(project=project),
        "self_agreement": self_agreement(project=project),
        "is_expert": project.expert_id == request.user.pk,
        "rate_percent": round(project.rereview_rate * 100, 1),
        "rater_agreement": rater_agreement(project=project),
        "raters": [
            (rater, *calibration_progress(rater=rater))
            for rater in CalibrationRater.objects.filter(project=project).select_related("user").order_by("id")
        ],
        "members": Membership.objects.filter(project=project)
        .exclude(user_id=project.expert_id)
        .select_related("user")
        .order_by("user__username"),
    }
    return render(request, "judges/reliability.html", context)
