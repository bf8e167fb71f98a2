from __future__ import annotations

from django.urls import path

from judges import (
    views,
    views_bias,
    views_cadence,
    views_compare,
    views_guardrails,
    views_promotion,
    views_reliability,
    views_sessions,
    views_versions,
)

urlpatterns = [
    path("projects/<slug:slug>/judges/", views.judge_list, name="judge_list"),
    path("projects/<slug:slug>/reliability/", views_reliability.reliability, name="expert_reliability"),
    path("projects/<slug:slug>/judges/<int:judge_id>/runs/", views.judge_run_create, name="judge_run_create"),
    path("projects/<slug:slug>/judges/runs/<int:run_id>/", views.judge_run_detail, name="judge_run_detail"),
    path("projects/<slug:slug>/judges/runs/<int:run_id>/cancel/", views.judge_run_cancel_view, name="judge_run_cancel"),
    path(
        "projects/<slug:slug>/judges/runs/<int:run_id>/review-session/",
        views_sessions.disagreement_session_create_view,
        name="judge_disagreement_session",
    ),
    # One judge: versions, diffs, the iteration history, prompt preview, few-shot examples from disagreements.
    path("projects/<slug:slug>/judges/<int:judge_id>/", views_versions.judge_detail, name="judge_detail"),
    path(
        "projects/<slug:slug>/judges/<int:judge_id>/versions/",
        views_versions.judge_version_create_view,
        name="judge_version_create",
    ),
    path(
        "projects/<slug:slug>/judges/<int:judge_id>/versions/<int:number>/preview/",
        views_versions.judge_version_preview,
        name="judge_version_preview",
    ),
    path(
        "projects/<slug:slug>/judges/<int:judge_id>/versions/<int:number>/from-current-labels/",
        views_versions.judge_version_from_current_labels_view,
        name="judge_version_from_current_labels",
    ),
    path(
        "projects/<slug:slug>/judges/runs/<int:run_id>/examples/",
        views_versions.judge_example_add,
        name="judge_example_add",
    ),
    # Promotion (the bar, promote/withdraw, the record) and side-by-side comparison of two judge versions.
    path("projects/<slug:slug>/judges/promotions/", views_promotion.promotion_history, name="promotion_history"),
    path(
        "projects/<slug:slug>/judges/promotion-bar/", views_promotion.promotion_bar_update, name="promotion_bar_update"
    ),
    path(
        "projects/<slug:slug>/judges/<int:judge_id>/versions/<int:number>/promote/",
        views_promotion.judge_version_promote_view,
        name="judge_version_promote",
    ),
    path(
        "projects/<slug:slug>/judges/criteria/<int:criterion_id>/withdraw-promotion/",
        views_promotion.promotion_withdraw_view,
        name="promotion_withdraw",
    ),
    path("projects/<slug:slug>/judges/compare/", views_compare.judge_compare, name="judge_compare"),
    # An LLM version's bias battery: started from the judge page, followed on its own page.
    path(
        "projects/<slug:slug>/judges/<int:judge_id>/versions/<int:number>/bias-runs/",
        views_bias.bias_run_create_view,
        name="bias_run_create",
    ),
    path("projects/<slug:slug>/judges/bias-runs/<int:run_id>/", views_bias.bias_run_detail, name="bias_run_detail"),
    path(
        "projects/<slug:slug>/judges/bias-runs/<int:run_id>/cancel/",
        views_bias.bias_run_cancel_view,
        name="bias_run_cancel",
    ),
]

# Guardrails (judges.guardrails): mark a version guardrail-ready or revoke it, and the guardrail bar.
urlpatterns += [
    path(
        "projects/<slug:slug>/judges/<int:judge_id>/versions/<int:number>/guardrail/",
        views_guardrails.judge_version_guardrail_mark_view,
        name="judge_version_guardrail_mark",
    ),
    path(
        "projects/<slug:slug>/judges/<int:judge_id>/versions/<int:number>/guardrail/revoke/",
        views_guardrails.judge_version_guardrail_revoke_view,
        name="judge_version_guardrail_revoke",
    ),
    path(
        "projects/<slug:slug>/judges/guardrail-bar/", views_guardrails.guardrail_bar_update, name="guardrail_bar_update"
    ),
    path("projects/<slug:slug>/loop/cadence/", views_cadence.loop_cadence_update, name="loop_cadence_update"),
]
