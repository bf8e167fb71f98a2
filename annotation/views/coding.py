"""Coding notes to failure modes (axial coding): the coding board of uncoded notes, and the mode chips and picker
on the review page.

Every view starts with `get_project_for_user` (404 for outsiders, before anything else is looked up); writes need
`Permission.EDIT_CODEBOOK` (403 for viewers) and go through `annotation.codebook`, the only writer of note ↔ mode links.
Bad input (no notes selected, an unknown mode, a note of another project) is answered with a message naming it,
and nothing is written. The board's reads are in `annotation.coding_board`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.charts import pareto_chart
from annotation.codebook import note_code_to_new_mode, notes_code, notes_unassign
from annotation.coding_board import BoardParams, board_page, mode_choices, pareto_counts, parse_id
from annotation.models import FailureMode, Note, Project
from annotation.services import DomainError

BOARD_TEMPLATE = "annotation/coding_board.html"
MODES_TEMPLATE = "annotation/_note_modes.html"
# One bulk action codes at most a few pages of notes; a bigger request is a mistake or an abuse.
MAX_SELECTED = 500


# The coding board -----------------------------------------------------------------------------------------------


def _board_context(access: ProjectAccess, params: BoardParams, **extra: Any) -> dict[str, Any]:
    project = access.project
    page = board_page(project=project, params=params)
    board_url = reverse("coding_board", args=[project.slug])
    return {
        "project": project,
        "access": access,
        "params": params,
        "page": page,
        "board_url": board_url,
        "next_url": board_url + params.querystring(after=page.next_cursor) if page.next_cursor else "",
        "previous_url": board_url + params.querystring(before=page.previous_cursor) if page.previous_cursor else "",
        "modes": mode_choices(project=project) if access.can(Permission.EDIT_CODEBOOK) else [],
        "pareto": pareto_chart(
            pareto_counts(project=project), trace_list_url=reverse("trace_list", args=[project.slug])
        ),
        "selected": set(),
        **extra,
    }


@login_required
@require_GET
def coding_board(request: HttpRequest, slug: str) -> HttpResponse:
    """The notes nobody has coded yet, newest first, to code in bulk; with `coded=1` the coded ones too."""
    access = get_project_for_user(request, slug)
    params = BoardParams.from_query(request.GET)
    template = BOARD_TEMPLATE + "#board" if request.htmx else BOARD_TEMPLATE
    return render(request, template, _board_context(access, params))


def _selected_note_ids(raw_ids: list[str]) -> list[int]:
    if not raw_ids:
        raise DomainError("Select at least one note to code.")
    if len(raw_ids) > MAX_SELECTED:
        raise DomainError(f"Select at most {MAX_SELECTED} notes at a time ({len(raw_ids)} were selected).")
    ids = []
    for raw in raw_ids:
        note_id = parse_id(raw)
        if note_id is None:
            raise DomainError(f"“{raw[:40]}” is not a note id.")
        ids.append(note_id)
    return ids


@login_required
@require_POST
def coding_assign(request: HttpRequest, slug: str) -> HttpResponse:
    """The bulk action: code the selected notes to an existing mode, or to a new one created on the spot."""
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    project = access.project
    params = BoardParams.from_query(request.GET)
    raw_ids = request.POST.getlist("note")
    try:
        coded = notes_code(
            project=project,
            note_ids=_selected_note_ids(raw_ids),
            existing_mode=request.POST.get("mode", ""),
            new_mode_name=request.POST.get("new_mode", ""),
            actor=request.user,
        )
    except DomainError as exc:
        selected = {note_id for raw in raw_ids if (note_id := parse_id(raw)) is not None}
        context = _board_context(
            access,
            params,
            error=str(exc),
            selected=selected,
            draft_mode=request.POST.get("mode", ""),
            draft_new_mode=request.POST.get("new_mode", ""),
        )
        if request.htmx:
            # htmx swaps only 2xx answers; the message is in the swapped region.
            return render(request, BOARD_TEMPLATE + "#board", context)
        return render(request, BOARD_TEMPLATE, context, status=400)
    added, name = coded.added, coded.failure_mode.name
    status = f"Coded {added} note{'s' if added != 1 else ''} to “{name}”" + (" (new mode)" if coded.created else "")
    if coded.already:
        status += f"; {coded.already} already had it"
    status += "."
    if request.htmx:
        return render(request, BOARD_TEMPLATE + "#board", _board_context(access, params, status=status))
    messages.success(request, status)
    return redirect(reverse("coding_board", args=[slug]) + params.position)


# The review page: a note's modes as chips, and the `m` picker ---------------------------------------------------


def _note(project: Project, note_id: int) -> Note:
    return get_object_or_404(Note.objects.select_related("trace"), trace__project=project, pk=note_id)


def _chips_response(request: HttpRequest, access: ProjectAccess, note: Note, error: str = "") -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error)
        url = reverse("trace_detail", args=[access.project.slug, note.trace.external_id])
        return redirect(f"{url}#note-{note.pk}")
    context = {"project": access.project, "access": access, "note": note, "mode_error": error}
    return render(request, MODES_TEMPLATE, context)


@login_required
@require_POST
def note_mode_assign(request: HttpRequest, slug: str, note_id: int) -> HttpResponse:
    """Code one note to an existing mode (`mode` = its id)."""
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    note = _note(access.project, note_id)
    try:
        notes_code(
            project=access.project, note_ids=[note.pk], existing_mode=request.POST.get("mode", ""), actor=request.user
        )
    except DomainError as exc:
        return _chips_response(request, access, note, str(exc))
    return _chips_response(request, access, note)


@login_required
@require_POST
def note_mode_create(request: HttpRequest, slug: str, note_id: int) -> HttpResponse:
    """Create a mode named `name` and code the note to it, in one transaction."""
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    note = _note(access.project, note_id)
    try:
        note_code_to_new_mode(project=access.project, note=note, name=request.POST.get("name", ""), actor=request.user)
    except DomainError as exc:
        return _chips_response(request, access, note, str(exc))
    return _chips_response(request, access, note)


@login_required
@require_POST
def note_mode_remove(request: HttpRequest, slug: str, note_id: int, mode_id: int) -> HttpResponse:
    """Take one mode off one note (a chip's ×)."""
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    note = _note(access.project, note_id)
    mode = access.get_object_or_404(FailureMode, pk=mode_id)
    notes_unassign(notes=[note], failure_mode=mode)
    return _chips_response(request, access, note)


@login_required
@require_GET
def failure_mode_choices(request: HttpRequest, slug: str) -> JsonResponse:
    """The picker's options: `{"modes": [{"id", "name"}]}`, non-retired modes by name."""
    access = get_project_for_user(request, slug)
    modes = [{"id": mode.pk, "name": mode.name} for mode in mode_choices(project=access.project)]
    return JsonResponse({"modes": modes})
