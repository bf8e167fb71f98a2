"""The failure taxonomy in and out of files: exports of the modes with their counts and of the notes with their
modes (CSV and JSON), the import of a codebook (modes with definitions), and the notes export read back.

Exports read the same numbers as the failure-modes page (`taxonomy.failure_mode_counts`). The notes export is
streamed in chunks of NOTES_CHUNK notes read by keyset on the note id, so 200,000 notes never sit in memory at
once. In CSV, a note's failure modes share one cell joined by `CSV_LIST_SEPARATOR` ("; "), and text cells that a
spreadsheet would run as a formula get a leading apostrophe (see `taxonomy_format.csv_safe`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from annotation.codebook import MODE_NAME_MAX_CHARS, failure_mode_create, failure_mode_redefine, notes_assign
from annotation.models import FailureMode, Membership, Note, NoteFailureMode, Project, Trace
from annotation.services import NOTE_MAX_CHARS, DomainError
from annotation.taxonomy import failure_mode_counts
from annotation.taxonomy_format import (
    MODE_COLUMNS,
    NOTE_COLUMNS,
    CodebookEntry,
    NoteEntry,
    RowError,
    TaxonomyFileError,
    csv_safe,
    join_names,
    name_key,
    parse_codebook,
    parse_notes_file,
)
from annotation.trace_format import format_timestamp

EXPORT_FORMATS = ("csv", "json")
# Notes per read of the notes export: large enough that the two queries per chunk cost little, small enough that
# a chunk stays a few megabytes whatever the size of the project (the peak is ~20 MB at 200,000 notes).
NOTES_CHUNK = 10_000
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}

if TYPE_CHECKING:  # pandas (with pyarrow) costs seconds and ~100 MB to import; only exports need it
    import pandas as pd


def export_filename(project: Project, what: str, fmt: str) -> str:
    """`acme-failure-modes.csv`, `acme-notes.json`: a slug is already safe in a file name and a header."""
    return f"{project.slug}-{what}.{fmt}"


def _csv_text(frame: pd.DataFrame, columns: tuple[str, ...]) -> str:
    for column in columns:
        frame[column] = frame[column].map(csv_safe)
    return frame.to_csv(index=False, lineterminator="\n")


def _json_text(records: list[dict[str, Any]]) -> str:
    # json rather than DataFrame.to_json, which writes every "/" as "\/".
    return json.dumps(records, ensure_ascii=False, indent=1) + "\n"


# --- the modes with their counts ---------------------------------------------------------------------------------


def failure_modes_frame(*, project: Project) -> pd.DataFrame:
    """One row per failure mode (those `failure_mode_counts` lists), most frequent first, in MODE_COLUMNS order.
    `merged_into` is the name of the mode a merged mode went into, else None."""
    counts = failure_mode_counts(project=project)
    merged_into = dict(
        FailureMode.objects.filter(project=project, merged_into__isnull=False).values_list("id", "merged_into__name")
    )
    rows = [
        {
            "id": count.id,
            "name": count.name,
            "definition": count.definition,
            "retired": count.retired,
            "merged_into": merged_into.get(count.id),
            "trace_count": count.trace_count,
            "note_count": count.note_count,
            "share_of_reviewed_traces": count.share_of_reviewed_traces,
            "share_of_failing_traces": count.share_of_failing_traces,
        }
        for count in counts
    ]
    import pandas as pd

    return pd.DataFrame(rows, columns=list(MODE_COLUMNS))


def failure_modes_export(*, project: Project, fmt: str) -> str:
    """The modes export as CSV text or as a JSON list of objects."""
    frame = failure_modes_frame(project=project)
    if fmt == "csv":
        frame["merged_into"] = frame["merged_into"].fillna("")
        return _csv_text(frame, ("name", "definition", "merged_into"))
    if fmt == "json":
        # Build the frame's dict with object dtype so missing values stay None (null), never NaN.
        return _json_text(frame.astype(object).where(frame.notna(), None).to_dict(orient="records"))
    raise ValueError(f"unknown export format {fmt!r}")


# --- the notes with their modes ----------------------------------------------------------------------------------


def _iso_utc(stamp: str) -> str:
    """A timestamp as the database writes it as text, in the trace format's form (`format_timestamp`).

    Django talks to PostgreSQL in UTC, which writes `2026-11-01 12:00:00.123456+00`; the string needs only its
    separator, fraction and zone rewritten. Any other shape (SQLite's naive UTC text, another zone) is parsed."""
    if stamp.endswith("+00"):
        stamp = stamp[:-3].replace(" ", "T", 1)
        whole, dot, fraction = stamp.partition(".")
        # PostgreSQL drops trailing zeros of the microseconds (.25489); isoformat always writes six digits.
        return f"{whole}.{fraction:0<6}Z" if dot else f"{whole}Z"
    parsed = datetime.fromisoformat(stamp)
    return format_timestamp(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))


def notes_export_chunks(*, project: Project, chunk_size: int = NOTES_CHUNK) -> Iterator[list[dict[str, Any]]]:
    """Every note of the project in id order, in lists of at most `chunk_size` rows (NOTE_COLUMNS keys). Each
    chunk costs two queries: the notes after the last id seen, and the mode links of that id range."""
    mode_names = dict(FailureMode.objects.filter(project=project).values_list("id", "name"))
    # The timestamp comes as the database's text: turning 200,000 of them into datetimes and back cost a third of
    # the whole export.
    notes = Note.objects.filter(trace__project=project).annotate(created_text=Cast("created_at", TextField()))
    notes = notes.order_by("id")
    last_id = 0
    while True:
        rows = list(
            notes.filter(id__gt=last_id).values_list(
                "id", "trace__external_id", "author__username", "created_text", "text"
            )[:chunk_size]
        )
        if not rows:
            return
        first_id, last_id = rows[0][0], rows[-1][0]
        # The id range, not `note_id IN (10,000 ids)`: the (note, mode) unique index serves it as one range scan.
        # Notes of other projects may sit in the range; the list of this project's modes leaves their links out.
        links = NoteFailureMode.objects.filter(
            note_id__gte=first_id, note_id__lte=last_id, failure_mode_id__in=list(mode_names)
        ).values_list("note_id", "failure_mode_id")
        modes_of: dict[int, list[str]] = {}
        for note_id, mode_id in links if mode_names else ():
            modes_of.setdefault(note_id, []).append(mode_names[mode_id])
        yield [
            {
                "note_id": note_id,
                "trace_external_id": external_id,
                "author": author,
                "created_at": _iso_utc(created_text),
                "text": text,
                "failure_modes": sorted(modes_of.get(note_id, [])),
            }
            for note_id, external_id, author, created_text, text in rows
        ]
        if len(rows) < chunk_size:
            return


def notes_export_csv(*, project: Project, chunk_size: int = NOTES_CHUNK) -> Iterator[str]:
    """The notes export as CSV text, one piece per chunk (the first with the header). Rows go through the csv
    module rather than a DataFrame: the same quoting, at a quarter of the cost per chunk."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(NOTE_COLUMNS)
    for chunk in notes_export_chunks(project=project, chunk_size=chunk_size):
        writer.writerows(
            (
                row["note_id"],
                csv_safe(row["trace_external_id"]),
                csv_safe(row["author"]),
                row["created_at"],
                csv_safe(row["text"]),
                csv_safe(join_names(row["failure_modes"])),
            )
            for row in chunk
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # no notes: still a file with its header, so it parses to zero rows
        yield buffer.getvalue()


def notes_export_json(*, project: Project, chunk_size: int = NOTES_CHUNK) -> Iterator[str]:
    """The notes export as one JSON list, written one chunk at a time."""
    opened = False
    for chunk in notes_export_chunks(project=project, chunk_size=chunk_size):
        # One dumps per chunk (its brackets dropped) instead of one per note: half the encoding time.
        body = json.dumps(chunk, ensure_ascii=False)[1:-1]
        yield ("[" if not opened else ",\n") + body
        opened = True
    yield "]\n" if opened else "[]\n"


# --- importing a codebook ----------------------------------------------------------------------------------------


@dataclass
class CodebookImportReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    # True when --strict found an error and nothing was written.
    rolled_back: bool = False

    def summary(self) -> str:
        return (
            f"created {len(self.created)}, updated {len(self.updated)}, unchanged {len(self.unchanged)}, "
            f"rejected {len(self.errors)}"
        )


class _StrictRollback(Exception):
    pass


def _apply_entry(
    entry: CodebookEntry, existing: dict[str, FailureMode], *, project: Project, actor: AbstractBaseUser | None
) -> str:
    """Create or redefine the entry's mode; returns "created", "updated" or "unchanged"."""
    mode = existing.get(name_key(entry.name))
    if mode is None:
        existing[name_key(entry.name)] = failure_mode_create(
            project=project, name=entry.name, definition=entry.definition or "", actor=actor
        )
        return "created"
    # A blank or missing definition never erases one the codebook already has.
    if entry.definition is None or entry.definition == mode.definition:
        return "unchanged"
    failure_mode_redefine(mode=mode, definition=entry.definition, actor=actor)
    return "updated"


def codebook_import(
    *, project: Project, data: bytes, fmt: str, actor: AbstractBaseUser | None, strict: bool = False
) -> CodebookImportReport:
    """Create the file's missing failure modes and update the definitions of existing ones (matched by name,
    ignoring case and spacing), writing the codebook's history. Bad rows are reported with their row number and
    the good ones imported; with `strict`, any bad row means nothing is written. Raises DomainError when the file
    as a whole cannot be read."""
    try:
        entries, errors = parse_codebook(data, fmt=fmt, max_name_chars=MODE_NAME_MAX_CHARS)
    except TaxonomyFileError as exc:
        raise DomainError(f"The codebook file cannot be read: {exc}") from None
    report = CodebookImportReport(errors=list(errors))
    if strict and errors:
        report.rolled_back = True
        return report

    try:
        with transaction.atomic():
            # Locked so a concurrent edit of a definition cannot interleave with this one and be lost silently.
            existing = {
                name_key(mode.name): mode
                for mode in FailureMode.objects.select_for_update().filter(project=project).order_by("id")
            }
            for entry in entries:
                try:
                    with transaction.atomic():
                        outcome = _apply_entry(entry, existing, project=project, actor=actor)
                except DomainError as exc:
                    report.errors.append(RowError(entry.row, str(exc)))
                    continue
                except IntegrityError:
                    # Created by someone else between the lock and this row (new rows are not locked).
                    report.errors.append(RowError(entry.row, f"“{entry.name}” was created meanwhile; import again"))
                    continue
                getattr(report, outcome).append(entry.name)
            if strict and report.errors:
                raise _StrictRollback
    except _StrictRollback:
        report.created, report.updated, report.unchanged = [], [], []
        report.rolled_back = True
    report.errors.sort(key=lambda error: error.row)
    return report


# --- importing the notes export ----------------------------------------------------------------------------------

# Entries resolved and written per round: bounds the size of each IN (…) lookup and of each bulk insert.
NOTES_IMPORT_BATCH = 2000


@dataclass
class NotesImportReport:
    created: int = 0  # new notes
    coded: int = 0  # new note ↔ mode links, on new and existing notes
    unchanged: int = 0  # notes already here with all their modes
    modes_created: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rolled_back: bool = False

    def summary(self) -> str:
        return (
            f"notes created {self.created}, links coded {self.coded}, unchanged {self.unchanged}, "
            f"failure modes created {len(self.modes_created)}, rejected {len(self.errors)}"
        )


@dataclass
class _ResolvedNote:
    entry: NoteEntry
    trace_id: int
    author_id: int
    note_id: int | None  # the note already on the trace with this text, if any


def _retired_mode(entry: NoteEntry, modes: dict[str, FailureMode]) -> str | None:
    for name in entry.failure_modes:
        mode = modes.get(name_key(name))
        if mode is not None and mode.is_retired:
            return mode.name
    return None


def _resolve_notes(
    project: Project, entries: list[NoteEntry], modes: dict[str, FailureMode]
) -> tuple[list[_ResolvedNote], list[RowError]]:
    """Match each entry to its trace (by external id), its author (a member, by username) and an existing note
    with the same text on that trace; a few queries per batch, whatever the number of entries."""
    members = dict(
        Membership.objects.filter(project=project, user__username__in={entry.author for entry in entries}).values_list(
            "user__username", "user_id"
        )
    )
    resolved: list[_ResolvedNote] = []
    errors: list[RowError] = []
    for start in range(0, len(entries), NOTES_IMPORT_BATCH):
        batch = entries[start : start + NOTES_IMPORT_BATCH]
        traces = dict(
            Trace.objects.filter(project=project, external_id__in={e.trace_external_id for e in batch}).values_list(
                "external_id", "id"
            )
        )
        existing = {
            (trace_id, text): note_id
            for trace_id, text, note_id in Note.objects.filter(trace_id__in=set(traces.values())).values_list(
                "trace_id", "text", "id"
            )
        }
        for entry in batch:
            if entry.trace_external_id not in traces:
                errors.append(RowError(entry.row, f"no trace “{entry.trace_external_id}” in this project"))
            elif entry.author not in members:
                errors.append(RowError(entry.row, f"“{entry.author}” is not a member of this project"))
            elif retired := _retired_mode(entry, modes):
                errors.append(RowError(entry.row, f"failure mode “{retired}” is retired; restore it first"))
            else:
                trace_id = traces[entry.trace_external_id]
                note_id = existing.get((trace_id, entry.text))
                resolved.append(_ResolvedNote(entry, trace_id, members[entry.author], note_id))
    return resolved, errors


def _write_notes(
    project: Project,
    resolved: list[_ResolvedNote],
    modes: dict[str, FailureMode],
    report: NotesImportReport,
    now: datetime,
) -> None:
    new_notes = Note.objects.bulk_create(
        Note(
            trace_id=item.trace_id,
            author_id=item.author_id,
            text=item.entry.text,
            created_at=item.entry.created_at or now,
            updated_at=item.entry.created_at or now,
        )
        for item in resolved
        if item.note_id is None
    )
    report.created += len(new_notes)
    fresh = iter(new_notes)
    notes_by_mode: dict[int, list[Note]] = {}
    for item in resolved:
        note = next(fresh) if item.note_id is None else Note(pk=item.note_id, trace_id=item.trace_id)
        for name in item.entry.failure_modes:
            notes_by_mode.setdefault(modes[name_key(name)].pk, []).append(note)
    # A note already here is unchanged when every mode the file gives it is already on it.
    known = [item for item in resolved if item.note_id is not None]
    linked = set(
        NoteFailureMode.objects.filter(note_id__in=[item.note_id for item in known]).values_list(
            "note_id", "failure_mode_id"
        )
    )
    report.unchanged += sum(
        1
        for item in known
        if all((item.note_id, modes[name_key(name)].pk) in linked for name in item.entry.failure_modes)
    )
    by_pk = {mode.pk: mode for mode in modes.values()}
    for mode_id, notes in notes_by_mode.items():
        # notes_assign writes each link with its note's trace and leaves a link already there alone.
        report.coded += notes_assign(notes=notes, failure_mode=by_pk[mode_id])

    # As when the expert writes a note on the review page: their first note marks the trace reviewed.
    first_by_expert: dict[int, datetime] = {}
    for item in resolved:
        if item.author_id == project.expert_id and item.note_id is None:
            stamp = item.entry.created_at or now
            first_by_expert[item.trace_id] = min(stamp, first_by_expert.get(item.trace_id, stamp))
    if first_by_expert:
        unreviewed = list(
            Trace.objects.select_for_update().filter(pk__in=list(first_by_expert), reviewed_at__isnull=True).only("id")
        )
        for trace in unreviewed:
            trace.reviewed_at = first_by_expert[trace.pk]
        Trace.objects.bulk_update(unreviewed, ["reviewed_at"])


def notes_import(
    *, project: Project, data: bytes, fmt: str, actor: AbstractBaseUser | None, strict: bool = False
) -> NotesImportReport:
    """Read a notes export (CSV or JSON) back into a project whose traces carry the same external ids: each note
    goes on its trace under its author (a member, by username) and is coded to its failure modes, missing modes
    created through the codebook. A note whose trace already has the same text is not duplicated; only its
    missing modes are added. Bad rows are reported with their row number; with `strict`, nothing is written when
    any row is bad. Raises DomainError when the file as a whole cannot be read."""
    try:
        entries, errors = parse_notes_file(
            data,
            fmt=fmt,
            max_name_chars=MODE_NAME_MAX_CHARS,
            max_text_chars=NOTE_MAX_CHARS,
            max_id_chars=Trace._meta.get_field("external_id").max_length,
        )
    except TaxonomyFileError as exc:
        raise DomainError(f"The notes file cannot be read: {exc}") from None
    report = NotesImportReport(errors=list(errors))
    if strict and errors:
        report.rolled_back = True
        return report
    now = timezone.now()
    try:
        with transaction.atomic():
            modes = {name_key(mode.name): mode for mode in FailureMode.objects.filter(project=project)}
            resolved, unresolved = _resolve_notes(project, entries, modes)
            report.errors.extend(unresolved)
            if strict and report.errors:
                raise _StrictRollback
            for item in resolved:
                for name in item.entry.failure_modes:
                    if name_key(name) not in modes:
                        try:
                            modes[name_key(name)] = failure_mode_create(project=project, name=name, actor=actor)
                        except DomainError as exc:
                            raise DomainError(f"row {item.entry.row}: {exc}") from None
                        report.modes_created.append(name)
            for start in range(0, len(resolved), NOTES_IMPORT_BATCH):
                _write_notes(project, resolved[start : start + NOTES_IMPORT_BATCH], modes, report, now)
    except _StrictRollback:
        report.created, report.coded, report.unchanged, report.modes_created = 0, 0, 0, []
        report.rolled_back = True
    report.errors.sort(key=lambda error: error.row)
    return report
