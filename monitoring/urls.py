from __future__ import annotations

from django.urls import path

from monitoring import views
from monitoring.metrics import metrics_view

urlpatterns = [
    # Prometheus scrapes (monitoring/metrics.py): no trailing slash, as scrapers expect.
    path("metrics", metrics_view, name="metrics"),
    path("projects/<slug:slug>/monitoring/", views.monitoring_overview, name="monitoring_overview"),
    path("projects/<slug:slug>/monitoring/settings/", views.monitoring_settings, name="monitoring_settings"),
    path(
        "projects/<slug:slug>/monitoring/<int:criterion_id>/", views.monitoring_criterion, name="monitoring_criterion"
    ),
    path(
        "projects/<slug:slug>/monitoring/<int:criterion_id>/rules/",
        views.monitoring_rule_create,
        name="monitoring_rule_create",
    ),
    # Any series by its provider (judges.monitored) and subject: an agent's task completion, say.
    path(
        "projects/<slug:slug>/monitoring/series/<slug:provider_name>/<int:subject_id>/",
        views.monitoring_series,
        name="monitoring_series",
    ),
    path(
        "projects/<slug:slug>/monitoring/series/<slug:provider_name>/<int:subject_id>/rules/",
        views.monitoring_series_rule_create,
        name="monitoring_series_rule_create",
    ),
    path(
        "projects/<slug:slug>/monitoring/series/<slug:provider_name>/<int:subject_id>/traffic/",
        views.monitoring_traffic_set,
        name="monitoring_traffic_set",
    ),
    path(
        "projects/<slug:slug>/monitoring/rules/<int:rule_id>/",
        views.monitoring_rule_update,
        name="monitoring_rule_update",
    ),
    path("projects/<slug:slug>/monitoring/alerts/<int:alert_id>/", views.monitoring_alert, name="monitoring_alert"),
]
