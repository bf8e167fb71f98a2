from __future__ import annotations

from django.urls import path

from suites import views as golden_views
from suites import views_compare, views_pairwise, views_runs

urlpatterns: list = [
    # The golden set: its page (current members, ?version=N snapshots, history), bulk removal, the JSONL export of
    # any version, and the panel on the review page (add with a reason, remove).
    path("projects/<slug:slug>/golden/", golden_views.golden_set, name="golden_set"),
    path("projects/<slug:slug>/golden/remove/", golden_views.golden_bulk_remove, name="golden_bulk_remove"),
    path("projects/<slug:slug>/golden/v<int:version>.jsonl", golden_views.golden_export, name="golden_export"),
    path("projects/<slug:slug>/t/<int:trace_id>/golden/", golden_views.golden_trace_add, name="golden_trace_add"),
    # A golden entry's reference (known-good answer): its form and its history.
    path(
        "projects/<slug:slug>/golden/t/<int:trace_id>/reference/",
        golden_views.golden_reference_edit,
        name="golden_reference_edit",
    ),
    path(
        "projects/<slug:slug>/t/<int:trace_id>/golden/remove/",
        golden_views.golden_trace_remove,
        name="golden_trace_remove",
    ),
    # A criterion's regression-suite floor, set from the panel on the criterion page.
    path(
        "projects/<slug:slug>/criteria/<int:criterion_id>/suite-floor/",
        golden_views.suite_floor_update,
        name="suite_floor_update",
    ),
    # Regression-suite runs (manage.py evalsuite, POST /api/v1/projects/{slug}/evalsuite), and two side by side.
    path("projects/<slug:slug>/suites/", views_runs.suite_run_list, name="suite_run_list"),
    path("projects/<slug:slug>/suites/compare/", views_compare.suite_compare, name="suite_compare"),
    path("projects/<slug:slug>/suites/<int:run_id>/", views_runs.suite_run_detail, name="suite_run_detail"),
    # Pairwise comparisons of two suite runs with an LLM judge (both orders), started from the comparison page.
    path("projects/<slug:slug>/suites/compare/pairwise/", views_pairwise.pairwise_start, name="pairwise_start"),
    path(
        "projects/<slug:slug>/suites/pairwise/<int:comparison_id>/",
        views_pairwise.pairwise_detail,
        name="pairwise_detail",
    ),
]
