from __future__ import annotations

from django.urls import include, path

from annotation.views import (
    calibration,
    codebook,
    coding,
    conversations,
    criteria,
    imports,
    members,
    projects,
    relabel,
    rereview,
    review,
    suggestions,
    taxonomy,
    taxonomy_io,
    tokens,
)
from annotation.views import sessions as session_views

urlpatterns = [
    path("projects/", projects.project_list, name="project_list"),
    path("projects/<slug:slug>/", projects.project_detail, name="project_detail"),
    # The expert's API tokens: list and create here, revoke by POST (kept for the record).
    path("projects/<slug:slug>/settings/tokens/", tokens.api_tokens, name="api_tokens"),
    path(
        "projects/<slug:slug>/settings/tokens/<int:token_id>/revoke/",
        tokens.api_token_revoke_view,
        name="api_token_revoke",
    ),
    path("projects/<slug:slug>/members/", members.project_members, name="project_members"),
    # Criteria: the pass/fail questions the expert labels and the judges answer.
    path("projects/<slug:slug>/criteria/new/", criteria.criterion_new, name="criterion_new"),
    path("projects/<slug:slug>/criteria/<int:criterion_id>/", criteria.criterion_edit, name="criterion_edit"),
    # Blind re-review of the expert's older labels (annotation.rereviews).
    path("projects/<slug:slug>/rereview/<int:trace_id>/", rereview.rereview, name="rereview"),
    path(
        "projects/<slug:slug>/self-reviews/<int:review_id>/decide/",
        rereview.self_review_decide,
        name="self_review_decide",
    ),
    path("projects/<slug:slug>/rereview-settings/", rereview.rereview_settings, name="rereview_settings"),
    # A calibration rater labels a sample of the expert's traces blind (annotation.calibration).
    path("projects/<slug:slug>/calibration/", calibration.calibration, name="calibration"),
    path("projects/<slug:slug>/calibration/invite/", calibration.calibration_invite, name="calibration_invite"),
    path("projects/<slug:slug>/calibration/<int:rater_id>/end/", calibration.calibration_end, name="calibration_end"),
    path(
        "projects/<slug:slug>/criteria/<int:criterion_id>/recalibrate/",
        criteria.criterion_recalibrate,
        name="criterion_recalibrate",
    ),
    # Reviewing: the queue, the trace list (keyset-paginated) and one trace. External ids may hold any character,
    # so the trace page takes the rest of the path; actions address traces by primary key under /t/.
    path("projects/<slug:slug>/review/", review.review_queue, name="review_queue"),
    path("projects/<slug:slug>/traces/", review.trace_list, name="trace_list"),
    path("projects/<slug:slug>/traces/<path:external_id>/", review.trace_detail, name="trace_detail"),
    # The traces sharing a session id as one conversation (the id in the query string: it may hold any character).
    path("projects/<slug:slug>/conversation/", conversations.conversation_detail, name="conversation_detail"),
    path("projects/<slug:slug>/t/<int:trace_id>/next/", review.trace_next, name="trace_next"),
    path("projects/<slug:slug>/t/<int:trace_id>/previous/", review.trace_previous, name="trace_previous"),
    path("projects/<slug:slug>/t/<int:trace_id>/reviewed/", review.trace_mark_reviewed, name="trace_mark_reviewed"),
    path("projects/<slug:slug>/t/<int:trace_id>/labels/<int:criterion_id>/", review.label_save, name="label_save"),
    path("projects/<slug:slug>/t/<int:trace_id>/notes/", review.note_add, name="note_add"),
    # A disagreement session's item: the blind label, then the decision between it and the earlier label.
    path("projects/<slug:slug>/t/<int:trace_id>/relabel/blind/", relabel.relabel_blind_view, name="relabel_blind"),
    path("projects/<slug:slug>/t/<int:trace_id>/relabel/decide/", relabel.relabel_decide_view, name="relabel_decide"),
    path("projects/<slug:slug>/notes/<int:note_id>/", review.note_edit, name="note_edit"),
    path("projects/<slug:slug>/notes/<int:note_id>/delete/", review.note_delete, name="note_delete"),
    # Review sessions: N traces picked by a strategy, reviewed in order through the queue (`?session=<id>`).
    path("projects/<slug:slug>/sessions/", session_views.session_list, name="session_list"),
    path("projects/<slug:slug>/sessions/new/", session_views.session_create, name="session_create"),
    path("projects/<slug:slug>/sessions/<int:session_id>/", session_views.session_detail, name="session_detail"),
    # The failure taxonomy: counts per mode and saturation.
    path("projects/<slug:slug>/failure-modes/", taxonomy.failure_mode_list, name="failure_mode_list"),
    # Suggested groupings of uncoded notes (clustering by the worker), accepted or rejected one by one.
    path("projects/<slug:slug>/failure-modes/suggestions/", suggestions.suggestion_home, name="suggestion_home"),
    path(
        "projects/<slug:slug>/failure-modes/suggestions/start/",
        suggestions.suggestion_run_create,
        name="suggestion_run_create",
    ),
    path(
        "projects/<slug:slug>/failure-modes/suggestions/<int:run_id>/",
        suggestions.suggestion_run_detail,
        name="suggestion_run_detail",
    ),
    path(
        "projects/<slug:slug>/suggestions/<int:suggestion_id>/accept/",
        suggestions.suggestion_accept_view,
        name="suggestion_accept",
    ),
    path(
        "projects/<slug:slug>/suggestions/<int:suggestion_id>/reject/",
        suggestions.suggestion_reject_view,
        name="suggestion_reject",
    ),
    # Editing the codebook: a page per mode, and one POST per kind of edit (each recorded in the mode's history).
    path("projects/<slug:slug>/failure-modes/new/", codebook.failure_mode_new, name="failure_mode_new"),
    path(
        "projects/<slug:slug>/failure-modes/<int:mode_id>/",
        include(
            [
                path("", codebook.failure_mode_detail, name="failure_mode_detail"),
                path("rename/", codebook.failure_mode_rename, name="failure_mode_rename"),
                path("definition/", codebook.failure_mode_redefine, name="failure_mode_redefine"),
                path("merge/", codebook.failure_mode_merge, name="failure_mode_merge"),
                path("split/", codebook.failure_mode_split, name="failure_mode_split"),
                path("retire/", codebook.failure_mode_retire, name="failure_mode_retire"),
                path("restore/", codebook.failure_mode_restore, name="failure_mode_restore"),
            ]
        ),
    ),
    # Coding notes to failure modes: the board of uncoded notes, and the chips and `m` picker on the review page.
    path("projects/<slug:slug>/failure-modes/coding/", coding.coding_board, name="coding_board"),
    path("projects/<slug:slug>/failure-modes/coding/assign/", coding.coding_assign, name="coding_assign"),
    path("projects/<slug:slug>/failure-modes/choices/", coding.failure_mode_choices, name="failure_mode_choices"),
    path(
        "projects/<slug:slug>/failure-modes/coding/notes/<int:note_id>/",
        coding.note_mode_assign,
        name="note_mode_assign",
    ),
    path(
        "projects/<slug:slug>/failure-modes/coding/notes/<int:note_id>/new/",
        coding.note_mode_create,
        name="note_mode_create",
    ),
    path(
        "projects/<slug:slug>/failure-modes/coding/notes/<int:note_id>/remove/<int:mode_id>/",
        coding.note_mode_remove,
        name="note_mode_remove",
    ),
    # Browser uploads, imported by the worker with progress.
    path("projects/<slug:slug>/imports/", imports.import_upload, name="import_upload"),
    path("projects/<slug:slug>/imports/<int:job_id>/", imports.import_detail, name="import_detail"),
    # Taxonomy files: downloads for every member (csv or json), a codebook upload for those who may code.
    path(
        "projects/<slug:slug>/failure-modes/export.<str:fmt>",
        taxonomy_io.failure_modes_download,
        name="failure_modes_download",
    ),
    path("projects/<slug:slug>/failure-modes/notes.<str:fmt>", taxonomy_io.notes_download, name="notes_download"),
    path("projects/<slug:slug>/failure-modes/import/", taxonomy_io.codebook_upload, name="codebook_upload"),
]
