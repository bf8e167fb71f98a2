"""The failure taxonomy page: how often each failure mode occurs, and whether new ones still appear."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from annotation.access import get_project_for_user
from annotation.charts import pareto_chart, saturation_chart
from annotation.taxonomy import failure_mode_counts, no_new_mode_streak, saturation_curve


@login_required
def failure_mode_list(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    points = saturation_curve(project=project)
    context = {
        "project": project,
        "access": access,
        "counts": failure_mode_counts(project=project),
        "reviewed_count": len(points),
        "modes_seen": points[-1].distinct_failure_modes if points else 0,
        "streak": no_new_mode_streak(points),
    }
    # The two charts (server-side SVG) are drawn from the same numbers as the table and the statement.
    context.update(pareto=pareto_chart(context["counts"]), saturation=saturation_chart(points))
    return render(request, "annotation/failure_modes.html", context)
