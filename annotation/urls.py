from __future__ import annotations

from django.urls import path

from annotation.views import coding, imports, projects, review, taxonomy

urlpatterns = [
    path("projects/", projects.project_list, name="project_list"),
    path("projects/<slug:slug>/", projects.project_detail, name="project_detail"),
    # Reviewing: the queue, the trace list (keyset-paginated) and one trace. External ids may hold any character,
    # so the trace page takes the rest of the path; actions address traces by primary key under /t/.
    path("projects/<slug:slug>/review/", review.review_queue, name="review_queue"),
    path("projects/<slug:slug>/traces/", review.trace_list, name="trace_list"),
    path("projects/<slug:slug>/traces/<path:external_id>/", review.trace_detail, name="trace_detail"),
    path("projects/<slug:slug>/t/<int:trace_id>/next/", review.trace_next, name="trace_next"),
    path("projects/<slug:slug>/t/<int:trace_id>/previous/", review.trace_previous, name="trace_previous"),
    path("projects/<slug:slug>/t/<int:trace_id>/reviewed/", review.trace_mark_reviewed, name="trace_mark_reviewed"),
    path("projects/<slug:slug>/t/<int:trace_id>/labels/<int:criterion_id>/", review.label_save, name="label_save"),
    path("projects/<slug:slug>/t/<int:trace_id>/notes/", review.note_add, name="note_add"),
    path("projects/<slug:slug>/notes/<int:note_id>/", review.note_edit, name="note_edit"),
    path("projects/<slug:slug>/notes/<int:note_id>/delete/", review.note_delete, name="note_delete"),
    # The failure taxonomy: counts per mode and saturation.
    path("projects/<slug:slug>/failure-modes/", taxonomy.failure_mode_list, name="failure_mode_list"),
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
]
