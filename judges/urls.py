from __future__ import annotations

from django.urls import path

from judges import views

urlpatterns = [
    path("projects/<slug:slug>/judges/", views.judge_list, name="judge_list"),
    path("projects/<slug:slug>/judges/<int:judge_id>/runs/", views.judge_run_create, name="judge_run_create"),
    path("projects/<slug:slug>/judges/runs/<int:run_id>/", views.judge_run_detail, name="judge_run_detail"),
    path("projects/<slug:slug>/judges/runs/<int:run_id>/cancel/", views.judge_run_cancel_view, name="judge_run_cancel"),
]
