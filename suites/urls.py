from __future__ import annotations

from django.urls import path

from suites import views_runs

urlpatterns: list = [
    # Regression-suite runs (manage.py evalsuite, POST /api/v1/projects/{slug}/evalsuite).
    path("projects/<slug:slug>/suites/", views_runs.suite_run_list, name="suite_run_list"),
    path("projects/<slug:slug>/suites/<int:run_id>/", views_runs.suite_run_detail, name="suite_run_detail"),
]
