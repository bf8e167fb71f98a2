"""Editing the codebook: one page per failure mode with its notes and history, and the forms that change it.

Every view starts with `get_project_for_user` (404 for outsiders); writes need `Permission.EDIT_CODEBOOK` (403 for
viewers) and go through the services in `annotation.codebook`, whose DomainError messages are shown as they are.
Each form posts for real (redirect after success, errors as messages); with htmx it swaps the page region in place
instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from annotation import codebook
from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.models import FailureMode, FailureModeChange
from annotation.selectors import (
    failure_mode_history,
    failure_mode_notes_page,
    failure_mode_of,
    failure_mode_totals,
    failure_modes_merged_into,
    merge_targets,
)
from annotation.services import DomainError

TEMPLATE = "annotation/failure_mode_detail.html"
NOTES_PAGE_SIZE = 50
# The page explains recent edits; the full record stays in the database.
HISTORY_LIMIT = 50
# The merge picker lists the project's active modes by name; a codebook is dozens of modes, not thousands.
MERGE_CHOICES_LIMIT = 500
MERGED_FROM_LIMIT = 20


def _parse_id(value: str) -> int | None:
    """A primary key from a form or query string: ASCII digits that fit a bigint (str.isdigit also accepts "²")."""
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        return None
    return int(value)


@dataclass(frozen=True)
class HistoryItem:
    """One row of a mode's history in words, with the other mode involved (if any) to link to."""

    change: FailureModeChange
    text: str
    other_id: int | None = None
    other_name: str = ""


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _describe(change: FailureModeChange) -> HistoryItem:
    d = change.detail or {}
    action = FailureModeChange.Action
    if change.action == action.CREATED and d.get("split_from_id"):
        text = f"Created by splitting {_plural(d.get('notes', 0), 'note')} off “{d.get('split_from_name', '')}”"
        return HistoryItem(change, text, d["split_from_id"], d.get("split_from_name", ""))
    if change.action == action.CREATED:
        return HistoryItem(change, f"Created as “{d.get('name', '')}”")
    if change.action == action.RENAMED:
        return HistoryItem(change, f"Renamed “{d.get('from', '')}” → “{d.get('to', '')}”")
    if change.action == action.REDEFINED:
        was = d.get("from") or "(empty)"
        was = was if len(was) <= 200 else was[:199] + "…"
        return HistoryItem(change, f"Definition edited; it was: {was}")
    if change.action == action.MERGED and d.get("role") == "target":
        text = (
            f"Absorbed “{d.get('source_name', '')}”: {_plural(d.get('notes_moved', 0), 'note')} moved here"
            f" ({d.get('notes_already_on_target', 0)} already here); traces {d.get('target_traces_before', 0)}"
            f" → {d.get('target_traces_after', 0)}"
        )
        return HistoryItem(change, text, d.get("source_id"), d.get("source_name", ""))
    if change.action == action.MERGED:
        text = (
            f"Merged into “{d.get('target_name', '')}”: {_plural(d.get('source_notes', 0), 'note')} on"
            f" {_plural(d.get('source_traces', 0), 'trace')} moved, and retired"
        )
        return HistoryItem(change, text, d.get("target_id"), d.get("target_name", ""))
    if change.action == action.SPLIT:
        verb = "copied" if d.get("kept_on_original") else "moved"
        text = (
            f"Split: {_plural(d.get('notes_split', 0), 'note')} on {_plural(d.get('traces_split', 0), 'trace')}"
            f" {verb} to new mode “{d.get('new_mode_name', '')}”; traces here {d.get('original_traces_before', 0)}"
            f" → {d.get('original_traces_after', 0)}"
        )
        return HistoryItem(change, text, d.get("new_mode_id"), d.get("new_mode_name", ""))
    if change.action == action.RETIRED:
        text = f"Retired; {_plural(d.get('notes', 0), 'note')} on {_plural(d.get('traces', 0), 'trace')} stay coded"
        return HistoryItem(change, text)
    if change.action == action.RESTORED and d.get("was_merged_into_id"):
        text = f"Restored (it had been merged into “{d.get('was_merged_into_name', '')}”)"
        return HistoryItem(change, text, d["was_merged_into_id"], d.get("was_merged_into_name", ""))
    return HistoryItem(change, change.get_action_display())


def _get_mode(access: ProjectAccess, mode_id: int) -> FailureMode:
    return access.get_object_or_404(FailureMode.objects.select_related("merged_into"), pk=mode_id)


def _page_context(request: HttpRequest, access: ProjectAccess, mode: FailureMode, **extra: Any) -> dict[str, Any]:
    note_count, trace_count = failure_mode_totals(mode=mode)
    context = {
        "project": access.project,
        "access": access,
        "mode": mode,
        "note_count": note_count,
        "trace_count": trace_count,
        "notes_page": failure_mode_notes_page(
            mode=mode, before_note_id=_parse_id(request.GET.get("after", "")), size=NOTES_PAGE_SIZE
        ),
        "history": [_describe(change) for change in failure_mode_history(mode=mode, limit=HISTORY_LIMIT)],
        "merged_from": failure_modes_merged_into(mode=mode, limit=MERGED_FROM_LIMIT),
        "merge_choices": merge_targets(mode=mode, limit=MERGE_CHOICES_LIMIT),
    }
    context.update(extra)
    return context


@login_required
@require_GET
def failure_mode_detail(request: HttpRequest, slug: str, mode_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    mode = _get_mode(access, mode_id)
    return render(request, TEMPLATE, _page_context(request, access, mode))


@login_required
@require_POST
def failure_mode_new(request: HttpRequest, slug: str) -> HttpResponse:
    """The "New failure mode" form of the failure-modes list: on to the new mode's page, or back with the error."""
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    try:
        mode = codebook.failure_mode_create(
            project=access.project,
            name=request.POST.get("name", ""),
            definition=request.POST.get("definition", ""),
            actor=request.user,
        )
    except DomainError as exc:
        messages.error(request, f"New failure mode: {exc}")
        return redirect("failure_mode_list", slug)
    messages.success(request, f"Created failure mode “{mode.name}”.")
    return redirect("failure_mode_detail", slug, mode.pk)


# Edits of one mode: each view parses its form and calls one service; `_apply_edit` answers the same way for all.


def _apply_edit(
    request: HttpRequest, slug: str, mode_id: int, form_name: str, edit: Callable[[FailureMode], str]
) -> HttpResponse:
    """Run `edit` on the mode and report: a redirect with a message, or with htmx the page region re-rendered with
    the outcome beside the forms (and a failed form's input kept, so nothing typed is lost)."""
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    mode = _get_mode(access, mode_id)
    outcome: dict[str, Any]
    try:
        outcome = {"success": edit(mode)}
    except DomainError as exc:
        posted_notes = {_parse_id(value) for value in request.POST.getlist("note")} - {None}
        outcome = {
            "error": f"{form_name}: {exc}",
            "error_form": form_name,
            "posted": request.POST,
            "posted_notes": posted_notes,
        }
    if not request.htmx:
        if "error" in outcome:
            messages.error(request, outcome["error"])
        else:
            messages.success(request, outcome["success"])
        return redirect("failure_mode_detail", slug, mode_id)
    # htmx swaps only 2xx answers, so a refused edit is a 200 whose region shows the error.
    mode = _get_mode(access, mode_id)
    return render(request, f"{TEMPLATE}#page", _page_context(request, access, mode, **outcome))


@login_required
@require_POST
def failure_mode_rename(request: HttpRequest, slug: str, mode_id: int) -> HttpResponse:
    def edit(mode: FailureMode) -> str:
        old = mode.name
        mode = codebook.failure_mode_rename(mode=mode, name=request.POST.get("name", ""), actor=request.user)
        return "The name is unchanged." if mode.name == old else f"Renamed “{old}” to “{mode.name}”."

    return _apply_edit(request, slug, mode_id, "Rename", edit)


@login_required
@require_POST
def failure_mode_redefine(request: HttpRequest, slug: str, mode_id: int) -> HttpResponse:
    def edit(mode: FailureMode) -> str:
        codebook.failure_mode_redefine(mode=mode, definition=request.POST.get("definition", ""), actor=request.user)
        return "Definition saved."

    return _apply_edit(request, slug, mode_id, "Definition", edit)


@login_required
@require_POST
def failure_mode_merge(request: HttpRequest, slug: str, mode_id: int) -> HttpResponse:
    def edit(mode: FailureMode) -> str:
        raw = request.POST.get("target", "")
        target_id = _parse_id(raw)
        if target_id is None:
            raise DomainError("Choose the failure mode to merge into")
        target = failure_mode_of(project_id=mode.project_id, mode_id=target_id)
        if target is None:
            raise DomainError(f"Failure mode #{raw} no longer exists in this project; reload the page")
        codebook.failure_mode_merge(source=mode, target=target, actor=request.user)
        return f"Merged “{mode.name}” into “{target.name}”; “{mode.name}” is now retired."

    return _apply_edit(request, slug, mode_id, "Merge", edit)


def _note_ids(values: list[str]) -> list[int]:
    ids = []
    for value in values:
        parsed = _parse_id(value)
        if parsed is None:
            raise DomainError(f"Note id “{value}” is not a number")
        ids.append(parsed)
    return ids


@login_required
@require_POST
def failure_mode_split(request: HttpRequest, slug: str, mode_id: int) -> HttpResponse:
    def edit(mode: FailureMode) -> str:
        keep = request.POST.get("keep") == "on"
        new_mode = codebook.failure_mode_split(
            mode=mode,
            new_name=request.POST.get("new_name", ""),
            new_definition=request.POST.get("new_definition", ""),
            note_ids=_note_ids(request.POST.getlist("note")),
            actor=request.user,
            keep=keep,
            confirm_all=request.POST.get("confirm_all") == "on",
        )
        where = "copied to" if keep else "moved to"
        return f"Split: the chosen notes were {where} the new failure mode “{new_mode.name}” (see the history)."

    return _apply_edit(request, slug, mode_id, "Split", edit)


@login_required
@require_POST
def failure_mode_retire(request: HttpRequest, slug: str, mode_id: int) -> HttpResponse:
    def edit(mode: FailureMode) -> str:
        codebook.failure_mode_retire(mode=mode, actor=request.user)
        return f"Retired “{mode.name}”; its notes stay coded to it."

    return _apply_edit(request, slug, mode_id, "Retire", edit)


@login_required
@require_POST
def failure_mode_restore(request: HttpRequest, slug: str, mode_id: int) -> HttpResponse:
    def edit(mode: FailureMode) -> str:
        codebook.failure_mode_restore(mode=mode, actor=request.user)
        return f"Restored “{mode.name}”."

    return _apply_edit(request, slug, mode_id, "Restore", edit)
