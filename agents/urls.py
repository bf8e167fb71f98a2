from __future__ import annotations

from django.urls import path

from agents import views

urlpatterns = [
    path("projects/<slug:slug>/agents/", views.agents_page, name="agents"),
    path("projects/<slug:slug>/agents/graders/", views.grader_create_view, name="agents_grader_create"),
    path("projects/<slug:slug>/agents/graders/<int:grader_id>/grade/", views.grading_run_create, name="agents_grade"),
    path(
        "projects/<slug:slug>/agents/graders/<int:grader_id>/progress/", views.grading_progress, name="agents_progress"
    ),
    path("projects/<slug:slug>/agents/graders/<int:grader_id>/task/", views.task_detail, name="agents_task"),
    path(
        "projects/<slug:slug>/agents/graders/<int:grader_id>/monitoring/",
        views.grader_monitoring,
        name="agents_grader_monitoring",
    ),
]
