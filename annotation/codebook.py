"""Writes to the failure taxonomy (the codebook): modes and the coding of notes to them.

Every change to a mode is recorded as a FailureModeChange, so a count that moved can be explained later. Links
between notes and modes are written only here (and by ingestion's bulk path), because each link carries its
note's trace.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from annotation.coding_board import parse_id
from annotation.models import Criterion, FailureMode, FailureModeChange, Note, NoteFailureMode, Project
from annotation.services import DomainError
from core.validation import nul_message

MODE_NAME_MAX_CHARS = FailureMode._meta.get_field("name").max_length


def clean_mode_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise DomainError("A failure mode needs a name")
    if "\x00" in name:
        raise DomainError(nul_message("A failure mode name"))
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
    mode = FailureMode.objects.create(project=project, name=name, definition=_clean_definition(definition))
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
    # Re-read the mode under a row lock: a merge, split or retire committing between the check and the insert
    # would otherwise leave these links on a mode that just lost its notes (the foreign key is only checked at
    # commit, so the insert alone does not wait for them).
    locked = FailureMode.objects.select_for_update(no_key=True).filter(pk=failure_mode.pk).first()
    if locked is None:
        raise DomainError(f"Failure mode “{failure_mode.name}” no longer exists; reload the page")
    failure_mode = locked
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


# Editing the codebook ---------------------------------------------------------------------------------------------
#
# Each edit locks the rows of the modes it touches (SELECT … FOR UPDATE, in primary-key order so two edits never
# wait on each other crosswise) and re-reads them, so it decides on the committed state, not on the caller's copy:
# a merge into a mode that another request just retired is refused instead of moving notes onto it. notes_assign
# locks its mode too, so notes coded to a mode while it is merged end up on the target rather than left behind.

DEFINITION_MAX_CHARS = 5000


def _locked(*modes: FailureMode) -> list[FailureMode]:
    """The current rows of the modes, locked for this transaction, in the order given."""
    ids = sorted({mode.pk for mode in modes})
    rows = {row.pk: row for row in FailureMode.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
    for mode in modes:
        if mode.pk not in rows:
            raise DomainError(f"Failure mode “{mode.name}” (#{mode.pk}) no longer exists; reload the page")
    return [rows[mode.pk] for mode in modes]


def _record(mode: FailureMode, action: str, actor: AbstractBaseUser | None, **detail: object) -> FailureModeChange:
    return FailureModeChange.objects.create(
        project_id=mode.project_id, failure_mode=mode, action=action, detail=detail, actor=actor
    )


@contextmanager
def _name_guard(name: str) -> Iterator[None]:
    """The name check above reads before it writes, so a concurrent edit can take the same name in between; the
    unique constraint then refuses the write, and the user gets the same message instead of a server error."""
    try:
        with transaction.atomic():
            yield
    except IntegrityError as exc:
        raise DomainError(f"A failure mode named “{name}” already exists in this project") from exc


def _clean_definition(definition: str) -> str:
    definition = definition.strip()
    if "\x00" in definition:
        raise DomainError(nul_message("A failure mode definition"))
    if len(definition) > DEFINITION_MAX_CHARS:
        raise DomainError(f"A failure mode definition is limited to {DEFINITION_MAX_CHARS} characters")
    return definition


def _link_totals(mode: FailureMode) -> tuple[int, int]:
    """(notes, distinct traces) coded to the mode: one aggregate over its entries in the (mode, trace) index."""
    totals = NoteFailureMode.objects.filter(failure_mode=mode).aggregate(
        notes=Count("id"), traces=Count("trace_id", distinct=True)
    )
    return totals["notes"], totals["traces"]


@transaction.atomic
def failure_mode_rename(*, mode: FailureMode, name: str, actor: AbstractBaseUser | None) -> FailureMode:
    """Give the mode a new name (a change of case only is allowed); the same name again changes nothing."""
    name = clean_mode_name(name)
    (mode,) = _locked(mode)
    if name == mode.name:
        return mode
    _require_unique_name(mode.project, name, exclude=mode)
    old = mode.name
    mode.name = name
    with _name_guard(name):
        mode.save(update_fields=["name"])
    _record(mode, FailureModeChange.Action.RENAMED, actor, **{"from": old, "to": name})
    return mode


@transaction.atomic
def failure_mode_redefine(*, mode: FailureMode, definition: str, actor: AbstractBaseUser | None) -> FailureMode:
    """Replace the mode's definition; the same text again changes nothing."""
    definition = _clean_definition(definition)
    (mode,) = _locked(mode)
    if definition == mode.definition:
        return mode
    old = mode.definition
    mode.definition = definition
    mode.save(update_fields=["definition"])
    _record(mode, FailureModeChange.Action.REDEFINED, actor, **{"from": old, "to": definition})
    return mode


@transaction.atomic
def failure_mode_merge(*, source: FailureMode, target: FailureMode, actor: AbstractBaseUser | None) -> FailureMode:
    """Move every note of `source` to `target` and retire `source` as merged into it. A note already coded to the
    target keeps its one link there (its link to the source is dropped), so no note is counted twice. Both modes
    get a "merged" history row with the counts moved. Returns the target."""
    if source.pk == target.pk:
        raise DomainError(f"Cannot merge failure mode “{source.name}” into itself")
    if source.project_id != target.project_id:
        raise DomainError(f"Failure modes “{source.name}” and “{target.name}” belong to different projects")
    source, target = _locked(source, target)
    if source.is_retired:
        raise DomainError(f"Failure mode “{source.name}” is already retired; restore it before merging it")
    if target.is_retired:
        raise DomainError(f"Cannot merge into “{target.name}”: it is retired; restore it or choose another mode")

    source_links = NoteFailureMode.objects.filter(failure_mode=source)
    source_notes, source_traces = _link_totals(source)
    target_notes_before, target_traces_before = _link_totals(target)
    on_target = NoteFailureMode.objects.filter(failure_mode=target).values("note_id")
    duplicates, _ = source_links.filter(note_id__in=on_target).delete()
    moved = source_links.update(failure_mode=target)
    target_notes_after, target_traces_after = _link_totals(target)

    source.retired_at = timezone.now()
    source.merged_into = target
    source.save(update_fields=["retired_at", "merged_into"])
    # A criterion born from the source now checks for the merged mode.
    criteria_moved = Criterion.objects.filter(failure_mode=source).update(failure_mode=target)
    detail = {
        "source_id": source.pk,
        "source_name": source.name,
        "target_id": target.pk,
        "target_name": target.name,
        "notes_moved": moved,
        "notes_already_on_target": duplicates,
        "source_notes": source_notes,
        "source_traces": source_traces,
        "target_traces_before": target_traces_before,
        "target_traces_after": target_traces_after,
        "target_notes_before": target_notes_before,
        "target_notes_after": target_notes_after,
        "criteria_moved": criteria_moved,
    }
    _record(source, FailureModeChange.Action.MERGED, actor, role="source", **detail)
    _record(target, FailureModeChange.Action.MERGED, actor, role="target", **detail)
    return target


@transaction.atomic
def failure_mode_split(
    *,
    mode: FailureMode,
    new_name: str,
    new_definition: str,
    note_ids: Iterable[int],
    actor: AbstractBaseUser | None,
    keep: bool = False,
    confirm_all: bool = False,
) -> FailureMode:
    """Code the chosen notes of `mode` to a new mode; unless `keep`, they leave `mode`. The notes must all be
    coded to `mode` now; choosing every one of its notes needs `confirm_all` (without `keep` that empties the
    mode, which a rename does more honestly). Returns the new mode."""
    wanted = sorted(set(note_ids))
    if not wanted:
        raise DomainError("Choose at least one note to split off")
    new_name = clean_mode_name(new_name)
    new_definition = _clean_definition(new_definition)
    (mode,) = _locked(mode)
    if mode.is_retired:
        raise DomainError(f"Failure mode “{mode.name}” is retired; restore it before splitting it")
    _require_unique_name(mode.project, new_name)

    links = list(
        NoteFailureMode.objects.filter(failure_mode=mode, note_id__in=wanted).values_list("note_id", "trace_id")
    )
    missing = sorted(set(wanted) - {note_id for note_id, _ in links})
    if missing:
        shown = ", ".join(str(note_id) for note_id in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise DomainError(
            f"Note{'s' if len(missing) > 1 else ''} {shown} {'are' if len(missing) > 1 else 'is'} not coded to "
            f"“{mode.name}” (deleted or moved since the page was loaded?); reload the page"
        )
    total_notes, total_traces = _link_totals(mode)
    if len(links) == total_notes and not confirm_all:
        raise DomainError(
            f"All {total_notes} notes of “{mode.name}” are chosen; confirm that you mean to split off every note"
        )

    with _name_guard(new_name):
        new_mode = FailureMode.objects.create(project_id=mode.project_id, name=new_name, definition=new_definition)
    NoteFailureMode.objects.bulk_create(
        [NoteFailureMode(note_id=note_id, failure_mode=new_mode, trace_id=trace_id) for note_id, trace_id in links]
    )
    if not keep:
        NoteFailureMode.objects.filter(failure_mode=mode, note_id__in=wanted).delete()
    remaining_notes, remaining_traces = _link_totals(mode)
    detail = {
        "mode_id": mode.pk,
        "mode_name": mode.name,
        "new_mode_id": new_mode.pk,
        "new_mode_name": new_name,
        "kept_on_original": keep,
        "note_ids": wanted,
        "notes_split": len(links),
        "traces_split": len({trace_id for _, trace_id in links}),
        "original_notes_before": total_notes,
        "original_traces_before": total_traces,
        "original_notes_after": remaining_notes,
        "original_traces_after": remaining_traces,
    }
    _record(mode, FailureModeChange.Action.SPLIT, actor, role="original", **detail)
    _record(
        new_mode,
        FailureModeChange.Action.CREATED,
        actor,
        name=new_name,
        definition=new_definition,
        split_from_id=mode.pk,
        split_from_name=mode.name,
        notes=len(links),
    )
    return new_mode


@transaction.atomic
def failure_mode_retire(*, mode: FailureMode, actor: AbstractBaseUser | None) -> FailureMode:
    """Take the mode out of the picker. Its notes stay coded to it (and counted) until they are moved."""
    (mode,) = _locked(mode)
    if mode.is_retired:
        raise DomainError(f"Failure mode “{mode.name}” is already retired")
    notes, traces = _link_totals(mode)
    mode.retired_at = timezone.now()
    mode.save(update_fields=["retired_at"])
    _record(mode, FailureModeChange.Action.RETIRED, actor, name=mode.name, notes=notes, traces=traces)
    return mode


@transaction.atomic
def failure_mode_restore(*, mode: FailureMode, actor: AbstractBaseUser | None) -> FailureMode:
    """Bring a retired mode back. A mode that was merged comes back empty: its notes stay with the merge target."""
    (mode,) = _locked(mode)
    if not mode.is_retired:
        raise DomainError(f"Failure mode “{mode.name}” is not retired")
    merged_into = mode.merged_into
    notes, traces = _link_totals(mode)
    mode.retired_at = None
    mode.merged_into = None
    mode.save(update_fields=["retired_at", "merged_into"])
    _record(
        mode,
        FailureModeChange.Action.RESTORED,
        actor,
        name=mode.name,
        notes=notes,
        traces=traces,
        was_merged_into_id=merged_into.pk if merged_into else None,
        was_merged_into_name=merged_into.name if merged_into else None,
    )
    return mode


# Coding notes from the coding board and the review page ---------------------------------------------------------


@dataclass(frozen=True)
class NotesCoded:
    failure_mode: FailureMode
    created: bool  # the mode was created to code these notes to
    added: int  # notes newly coded to it
    already: int  # notes that had it already


def _clean_new_mode_name(name: str) -> str:
    # PostgreSQL refuses NUL in text; say so rather than fail on the write.
    if "\x00" in name:
        raise DomainError("A failure mode name cannot contain NUL characters.")
    return name


@transaction.atomic
def notes_code(
    *, project: Project, note_ids: list[int], existing_mode: str = "", new_mode_name: str = "", actor: AbstractBaseUser
) -> NotesCoded:
    """Code the project's notes `note_ids` to the existing mode whose id the form posted (`existing_mode`), or to a
    new mode named `new_mode_name`: exactly one of the two. One transaction, so a new mode is not left behind when
    coding the notes to it fails. DomainError names the note or mode at fault; nothing is written then."""
    if not note_ids:
        raise DomainError("Select at least one note to code.")
    notes = list(Note.objects.filter(pk__in=note_ids, trace__project=project).only("id", "trace_id"))
    missing = sorted(set(note_ids) - {note.pk for note in notes})
    if missing:
        listed = ", ".join(str(note_id) for note_id in missing[:5]) + ("…" if len(missing) > 5 else "")
        raise DomainError(f"Note{'s' if len(missing) > 1 else ''} {listed} not found in this project.")
    existing_mode, new_mode_name = existing_mode.strip(), new_mode_name.strip()
    if existing_mode and new_mode_name:
        raise DomainError("Pick an existing failure mode or name a new one, not both.")
    created = bool(new_mode_name)
    if created:
        mode = failure_mode_create(project=project, name=_clean_new_mode_name(new_mode_name), actor=actor)
    else:
        if not existing_mode:
            raise DomainError("Pick a failure mode, or name a new one, to code the selected notes to.")
        mode_id = parse_id(existing_mode)
        mode = FailureMode.objects.filter(project=project, pk=mode_id).first() if mode_id is not None else None
        if mode is None:
            raise DomainError(f"Failure mode “{existing_mode[:40]}” does not exist in this project.")
    added = notes_assign(notes=notes, failure_mode=mode)
    return NotesCoded(failure_mode=mode, created=created, added=added, already=len(notes) - added)


@transaction.atomic
def note_code_to_new_mode(*, project: Project, note: Note, name: str, actor: AbstractBaseUser) -> FailureMode:
    """Create a mode named `name` in the project and code its note to it, both or neither."""
    mode = failure_mode_create(project=project, name=_clean_new_mode_name(name), actor=actor)
    notes_assign(notes=[note], failure_mode=mode)
    return mode
