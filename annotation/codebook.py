"""Writes to the failure taxonomy (the codebook): modes and the coding of notes to them.

Every change to a mode is recorded as a FailureModeChange, so a count that moved can be explained later. Links
between notes and modes are written only here (and by ingestion's bulk path), because each link carries its
note's trace.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import FailureMode, FailureModeChange, Note, NoteFailureMode, Project
from annotation.services import DomainError

MODE_NAME_MAX_CHARS = FailureMode._meta.get_field("name").max_length


def clean_mode_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise DomainError("A failure mode needs a name")
    if len(name) > MODE_NAME_MAX_CHARS:
        raise DomainError(f"A failure mode name is limited to {MODE_NAME_MAX_CHARS} characters")
    return name


def _require_unique_name(project: Project, name: str, *, exclude: FailureMode | None = None) -> None:
    clash = FailureMode.objects.filter(project=project, name__iexact=name)
    if exclude is not None:
        clash = clash.exclude(pk=exclude.pk)
    if clash.exists():
        raise DomainError(f"A failure mode named “{name}” already exists in this project")


@transaction.atomic
def failure_mode_create(
    *, project: Project, name: str, definition: str = "", actor: AbstractBaseUser | None
) -> FailureMode:
    name = clean_mode_name(name)
    _require_unique_name(project, name)
    mode = FailureMode.objects.create(project=project, name=name, definition=definition.strip())
    FailureModeChange.objects.create(
        project=project,
        failure_mode=mode,
        action=FailureModeChange.Action.CREATED,
        detail={"name": name, "definition": mode.definition},
        actor=actor,
    )
    return mode


def _check_same_project(notes: Iterable[Note], mode: FailureMode) -> list[Note]:
    notes = list(notes)
    if mode.is_retired:
        raise DomainError(f"Failure mode “{mode.name}” is retired; restore it before coding notes to it")
    stranger = (
        Note.objects.filter(pk__in=[note.pk for note in notes]).exclude(trace__project_id=mode.project_id).first()
    )
    if stranger is not None:
        raise DomainError(f"Note {stranger.pk} is not in the project of failure mode “{mode.name}”")
    return notes


@transaction.atomic
def notes_assign(*, notes: Iterable[Note], failure_mode: FailureMode) -> int:
    """Code the notes to the mode; returns how many links were new (already coded notes are left alone)."""
    notes = _check_same_project(notes, failure_mode)
    links = [NoteFailureMode(note_id=note.pk, failure_mode=failure_mode, trace_id=note.trace_id) for note in notes]
    before = NoteFailureMode.objects.filter(failure_mode=failure_mode, note__in=notes).count()
    NoteFailureMode.objects.bulk_create(links, ignore_conflicts=True)
    return len({note.pk for note in notes}) - before


@transaction.atomic
def notes_unassign(*, notes: Iterable[Note], failure_mode: FailureMode) -> int:
    """Remove the mode from the notes; returns how many links were removed."""
    deleted, _ = NoteFailureMode.objects.filter(failure_mode=failure_mode, note__in=list(notes)).delete()
    return deleted
