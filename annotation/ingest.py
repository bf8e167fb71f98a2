"""Ingestion: the one validation and write path behind `import_traces`, the REST API and browser uploads.

Records are validated one by one and grouped into batches by `ingest_batches.prepare_batches` (Django-free; for
a large file on PostgreSQL it runs in a child process, one batch ahead of the writes here). Each batch is one
transaction, so a trace never lands without its labels and notes; `strict` makes the whole import one
transaction that is rolled back when anything was rejected. On PostgreSQL a batch of new traces is COPYed
straight into the table; once an id turns out to be there already (a re-import, `update`), batches go through
COPY into a temporary table and one `INSERT … SELECT … ON CONFLICT`. Row-by-row saves are two orders of
magnitude too slow for a million traces. Other databases (SQLite, the embedded default) use `bulk_create`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Max
from psycopg import errors as psycopg_errors

from annotation.feedback_services import feedback_store, pending_feedback_claim
from annotation.ingest_batches import (
    COPY_COLUMNS,
    BatchOptions,
    CopyTarget,
    PreparedBatch,
    Rejection,
    batches_in_subprocess,
    open_path,
    prepare_batches,
)
from annotation.models import (
    Criterion,
    CriterionVersion,
    FailureMode,
    FailureModeChange,
    ImportJob,
    Label,
    LabelChange,
    Note,
    NoteFailureMode,
    Project,
    Trace,
)
from annotation.selectors import trace_ids
from annotation.signals import StoredBatch, traces_stored
from annotation.trace_format import PEER_FORMATS, FormatError, RawRecord, TraceRecord, format_for_path
from annotation.trace_readers import read_records
from core.counters import TRACES_ACCEPTED, TRACES_REJECTED, counter_add
from core.runs import run_fail, run_finish, run_heartbeat, run_working

logger = logging.getLogger(__name__)

ON_CONFLICT_CHOICES = ("skip", "update")
FORMATS = ("jsonl", "csv", *PEER_FORMATS)
# Large enough to amortise a round trip and the temp-table setup, small enough that a batch (and its
# RETURNING rows) stays a few MB and a failure loses little work.
PG_BATCH_SIZE = 5000
ORM_BATCH_SIZE = 1000
# Files at least this big are parsed in a child process while the database writes (see ingest_batches); below
# it, starting a Python process costs more than the overlap saves.
SUBPROCESS_MIN_BYTES = 8 << 20
# How many rejections an import job keeps for the browser; the count is always complete.
JOB_REJECTIONS_KEPT = 100
NO_EXPERT_ERROR = "labels need a project expert; pass --expert USERNAME or set one"
NO_AUTHOR_ERROR = "notes need an author: set a project expert or import as a user"
_COPY_COLUMN_LIST = ", ".join(COPY_COLUMNS)


class IngestError(ValueError):
    """The import as a whole cannot run (empty file, unreadable header, bad option); nothing was written."""


@dataclass
class IngestReport:
    created: int = 0
    updated: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    # True when `strict` rolled everything back because of a rejection: the counts above are then all zero.
    rolled_back: bool = False

    @property
    def accepted(self) -> int:
        return self.created + self.updated

    def summary(self) -> str:
        text = f"created {self.created}, duplicates {self.duplicates}, rejected {len(self.rejected)}"
        if self.updated:
            text += f", updated {self.updated}"
        return text


class _Rollback(Exception):
    """Raised inside the strict transaction to undo it."""


def _use_copy() -> bool:
    """The COPY fast path needs PostgreSQL (through psycopg 3); everything else takes the portable ORM path."""
    return connection.vendor == "postgresql"


class _Importer:
    def __init__(
        self,
        *,
        project: Project,
        on_conflict: str,
        strict: bool,
        user: AbstractBaseUser | None,
        by_line: bool,
        max_bytes: int,
    ) -> None:
        if on_conflict not in ON_CONFLICT_CHOICES:
            raise IngestError(f"on_conflict must be one of {', '.join(ON_CONFLICT_CHOICES)}, got {on_conflict!r}")
        self.project = project
        self.update = on_conflict == "update"
        self.strict = strict
        self.expert_id = project.expert_id
        self.note_author_id = user.pk if user is not None else project.expert_id
        self.postgres = _use_copy()
        self.options = BatchOptions(
            batch_size=PG_BATCH_SIZE if self.postgres else ORM_BATCH_SIZE,
            max_bytes=max_bytes,
            strict=strict,
            by_line=by_line,
            labels_error=NO_EXPERT_ERROR if self.expert_id is None else None,
            notes_error=NO_AUTHOR_ERROR if self.note_author_id is None else None,
            notes_are_experts=self.note_author_id is not None and self.note_author_id == self.expert_id,
            copy=CopyTarget(project_id=project.pk, queue_seed=project.queue_seed) if self.postgres else None,
        )
        self.report = IngestReport()
        self.criteria: dict[str, int] | None = None
        self.criterion_versions: dict[int, int] = {}
        self.failure_modes: dict[str, int] = {}
        self.conflicts_seen = False

    def run(
        self, batches: Iterable[PreparedBatch], on_batch: Callable[[int, IngestReport], None] | None
    ) -> IngestReport:
        rolled_back = False
        if self.strict:
            try:
                with transaction.atomic():
                    self._write_all(batches, on_batch)
                    if self.report.rejected:
                        raise _Rollback
            except _Rollback:
                rolled_back = True
        else:
            self._write_all(batches, on_batch)
        if rolled_back:
            self.report = IngestReport(rejected=self.report.rejected, rolled_back=True)
        # For /metrics: one INCR per import (not per trace), shared by every process through the cache.
        counter_add(TRACES_ACCEPTED, project_id=self.project.pk, n=self.report.accepted)
        counter_add(TRACES_REJECTED, project_id=self.project.pk, n=len(self.report.rejected))
        return self.report

    def _write_all(
        self, batches: Iterable[PreparedBatch], on_batch: Callable[[int, IngestReport], None] | None
    ) -> None:
        for batch in batches:
            self.report.rejected.extend(batch.rejections)
            if batch.external_ids:
                self._flush(batch)
            if on_batch:
                on_batch(batch.bytes_done, self.report)

    # -- writing a batch --------------------------------------------------------------------------------------

    def _flush(self, batch: PreparedBatch) -> None:
        with transaction.atomic():
            written = self._write_traces_postgres(batch) if self.postgres else self._write_traces_orm(batch)
            if written:
                self._announce(batch, written)
            created = sum(1 for _, is_new in written.values() if is_new)
            self.report.created += created
            self.report.updated += len(written) - created
            self.report.duplicates += len(batch) - len(written)
            annotated = [(r, *written[r.external_id]) for r in batch.annotated if r.external_id in written]
            if annotated:
                self._write_annotations(annotated, batch.now)
            if written:
                pending_feedback_claim(project_id=self.project.pk, external_ids=written.keys(), now=batch.now)

    def _announce(self, batch: PreparedBatch, written: dict[str, tuple[int | None, bool]]) -> None:
        """Tell the later stages what this batch stored (annotation.signals), inside the batch's transaction."""
        external_ids, sources, created = [], [], []
        for external_id, source in zip(batch.external_ids, batch.sources, strict=True):
            outcome = written.get(external_id)
            if outcome is not None:  # None: a duplicate, nothing was stored
                external_ids.append(external_id)
                sources.append(source)
                created.append(outcome[1])
        stored = StoredBatch(project=self.project, external_ids=external_ids, sources=sources, created=created)
        traces_stored.send(sender=Trace, batch=stored)

    def _write_traces_postgres(self, batch: PreparedBatch) -> dict[str, tuple[int | None, bool]]:
        if not self.update and not self.conflicts_seen:
            written = self._copy_new_traces(batch)
            if written is not None:
                return written
            # Ids already here (a re-import, or a concurrent one): every further batch takes the ON CONFLICT
            # path, rather than paying for a COPY that fails again.
            self.conflicts_seen = True
        return self._upsert_through_temp_table(batch)

    def _copy_new_traces(self, batch: PreparedBatch) -> dict[str, tuple[int | None, bool]] | None:
        """COPY the batch straight into the table; None (and nothing written) when an id is already there.

        Most imports bring new traces, and COPY inserts many rows per heap page and WAL record, which makes it
        much cheaper for the server than `INSERT … SELECT … ON CONFLICT` from a temporary table. Trace ids are
        looked up only for the traces that also carry labels or notes.
        """
        with connection.cursor() as cursor:
            raw_cursor = cursor.cursor
            try:
                # A savepoint, so that a unique violation undoes just this COPY.
                with (
                    transaction.atomic(),
                    raw_cursor.copy(f"COPY annotation_trace ({_COPY_COLUMN_LIST}) FROM STDIN") as copy,
                ):
                    copy.write(batch.copy_data)
            except psycopg_errors.UniqueViolation:
                return None
            written: dict[str, tuple[int | None, bool]] = dict.fromkeys(batch.external_ids, (None, True))
            if batch.annotated:
                annotated = trace_ids(project_id=self.project.pk, external_ids=[r.external_id for r in batch.annotated])
                for external_id, trace_id in annotated.items():
                    written[external_id] = (trace_id, True)
        return written

    def _upsert_through_temp_table(self, batch: PreparedBatch) -> dict[str, tuple[int | None, bool]]:
        """external_id → (trace id, created?) for every trace written; duplicates are absent."""
        written: dict[str, tuple[int | None, bool]] = {}
        with connection.cursor() as cursor:
            raw_cursor = cursor.cursor
            # ON COMMIT DROP cleans up after an error; the explicit DROP below keeps strict mode (one long
            # transaction) from piling up tables. `ord` numbers the rows in file order as COPY reads them.
            raw_cursor.execute(
                "CREATE TEMP TABLE _ingest_batch (ord int GENERATED ALWAYS AS IDENTITY, project_id bigint,"
                " created_at timestamptz, external_id text, input text, output text, messages jsonb, context jsonb,"
                " metadata jsonb, session_id text, task_id text, trial int, source text, occurred_at timestamptz,"
                " shuffle_key bigint, reviewed_at timestamptz, reference jsonb) ON COMMIT DROP"
            )
            with raw_cursor.copy(f"COPY _ingest_batch ({_COPY_COLUMN_LIST}) FROM STDIN") as copy:
                copy.write(batch.copy_data)
            if self.update:
                # The batch is tiny next to the table, but the temporary table has no statistics and the table's
                # may lag behind a big import; without these the planner can scan the whole project per batch.
                for setting in ("enable_seqscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"):
                    raw_cursor.execute(f"SET LOCAL {setting} = off")
                # A timestamp in the file replaces the stored one. Rows without one carry the batch time, which is
                # also their created_at: then the stored time is kept.
                raw_cursor.execute(
                    "UPDATE annotation_trace t SET input = b.input, output = b.output, messages = b.messages,"
                    " context = b.context, metadata = b.metadata, session_id = b.session_id, task_id = b.task_id,"
                    " trial = b.trial, source = b.source, reference = COALESCE(b.reference, t.reference),"
                    " occurred_at = CASE WHEN b.occurred_at = b.created_at THEN t.occurred_at ELSE b.occurred_at END,"
                    " reviewed_at = COALESCE(t.reviewed_at, b.reviewed_at)"
                    " FROM _ingest_batch b WHERE t.project_id = b.project_id AND t.external_id = b.external_id"
                    " RETURNING t.id, t.external_id"
                )
                for trace_id, external_id in raw_cursor.fetchall():
                    written[external_id] = (trace_id, False)
                for setting in ("enable_seqscan", "enable_bitmapscan", "enable_hashjoin", "enable_mergejoin"):
                    raw_cursor.execute(f"SET LOCAL {setting} = on")
            raw_cursor.execute(
                f"INSERT INTO annotation_trace ({_COPY_COLUMN_LIST}) SELECT {_COPY_COLUMN_LIST} FROM _ingest_batch"
                " ORDER BY ord ON CONFLICT (project_id, external_id) DO NOTHING RETURNING id, external_id"
            )
            for trace_id, external_id in raw_cursor.fetchall():
                written[external_id] = (trace_id, True)
            raw_cursor.execute("DROP TABLE _ingest_batch")
        return written

    def _write_traces_orm(self, batch: PreparedBatch) -> dict[str, tuple[int | None, bool]]:
        now, reviewed = batch.now, batch.reviewed
        ids = batch.external_ids
        traces = Trace.objects.filter(project=self.project, external_id__in=ids)
        existing: dict[str, Trace] = {}
        if self.update:
            existing = {trace.external_id: trace for trace in traces}
        else:
            existing = {
                external_id: Trace(id=pk, external_id=external_id)
                for external_id, pk in traces.values_list("external_id", "id")
            }
        written: dict[str, tuple[int | None, bool]] = {}
        new_traces = []
        changed = []
        for r in batch.records:
            trace = existing.get(r.external_id)
            if trace is None:
                new_traces.append(
                    Trace(
                        project=self.project,
                        external_id=r.external_id,
                        input=r.input,
                        output=r.output,
                        messages=r.messages,
                        context=r.context,
                        metadata=r.metadata,
                        session_id=r.session_id,
                        task_id=r.task_id,
                        trial=r.trial,
                        source=r.source,
                        occurred_at=r.timestamp or now,
                        created_at=now,
                        shuffle_key=self.project.shuffle_key(r.external_id),
                        reviewed_at=reviewed.get(r.external_id),
                        reference=r.reference,
                    )
                )
            elif self.update:
                for name in ("input", "output", "messages", "context", "metadata", "session_id", "task_id"):
                    setattr(trace, name, getattr(r, name))
                trace.trial, trace.source = r.trial, r.source
                trace.occurred_at = r.timestamp or trace.occurred_at
                # A reference the file does not give is kept: the expert may have set it on a golden-set entry.
                if r.reference is not None:
                    trace.reference = r.reference
                trace.reviewed_at = trace.reviewed_at or reviewed.get(r.external_id)
                changed.append(trace)
                written[r.external_id] = (trace.pk, False)
        if changed:
            Trace.objects.bulk_update(changed, [*Trace.CONTENT_FIELDS, "reviewed_at"])
        if new_traces:
            # ignore_conflicts: a concurrent import of the same ids must not fail this batch; whatever it
            # inserted first counts as a duplicate here, found by the id lookup below.
            Trace.objects.bulk_create(new_traces, ignore_conflicts=True)
            new_ids = [trace.external_id for trace in new_traces]
            created_now = Trace.objects.filter(
                project=self.project, external_id__in=new_ids, created_at=now
            ).values_list("external_id", "id")
            for external_id, pk in created_now:
                written[external_id] = (pk, True)
        return written

    def _criterion_id(self, name: str) -> int:
        if self.criteria is None:
            rows = Criterion.objects.filter(project=self.project).values_list("name", "id", "version")
            self.criteria = {name: pk for name, pk, _ in rows}
            self.criterion_versions = {pk: version for _, pk, version in rows}
        if name not in self.criteria:
            position = (Criterion.objects.filter(project=self.project).aggregate(m=Max("position"))["m"] or 0) + 1
            criterion, created = Criterion.objects.get_or_create(
                project=self.project, name=name, defaults={"position": position}
            )
            if created:  # named by an imported label: its (empty) definition is version 1
                CriterionVersion.objects.create(
                    criterion=criterion, number=1, name=name, created_at=criterion.created_at
                )
            self.criteria[name] = criterion.pk
            self.criterion_versions[criterion.pk] = criterion.version
        return self.criteria[name]

    def _failure_mode_id(self, name: str) -> int:
        if name not in self.failure_modes:
            mode, created = FailureMode.objects.get_or_create(project=self.project, name=name)
            if created:
                FailureModeChange.objects.create(
                    project=self.project,
                    failure_mode=mode,
                    action=FailureModeChange.Action.CREATED,
                    detail={"name": name, "definition": "", "via": "import"},
                    actor_id=self.note_author_id,
                )
            self.failure_modes[name] = mode.pk
        return self.failure_modes[name]

    def _write_annotations(self, annotated: list[tuple[TraceRecord, int, bool]], now: datetime) -> None:
        updated_ids = [trace_id for _, trace_id, is_new in annotated if not is_new]
        existing_labels: dict[tuple[int, int], Label] = {}
        existing_notes: set[tuple[int, str]] = set()
        if updated_ids:
            existing_labels = {
                (label.trace_id, label.criterion_id): label for label in Label.objects.filter(trace_id__in=updated_ids)
            }
            existing_notes = set(Note.objects.filter(trace_id__in=updated_ids).values_list("trace_id", "text"))

        new_labels: list[Label] = []
        changed_labels: list[Label] = []
        new_notes: list[tuple[Note, tuple[str, ...]]] = []
        for record, trace_id, _is_new in annotated:
            for item in record.labels:
                criterion_id = self._criterion_id(item.criterion)
                label = existing_labels.get((trace_id, criterion_id))
                if label is None:
                    new_labels.append(
                        Label(
                            trace_id=trace_id,
                            criterion_id=criterion_id,
                            verdict=item.verdict,
                            critique=item.critique,
                            author_id=self.expert_id,
                            created_at=now,
                            updated_at=now,
                            criterion_version=self.criterion_versions[criterion_id],
                        )
                    )
                elif (label.verdict, label.critique, label.author_id, label.criterion_version) != (
                    item.verdict,
                    item.critique,
                    self.expert_id,
                    self.criterion_versions[criterion_id],
                ):
                    label.verdict, label.critique, label.author_id, label.updated_at = (
                        item.verdict,
                        item.critique,
                        self.expert_id,
                        now,
                    )
                    label.criterion_version = self.criterion_versions[criterion_id]
                    changed_labels.append(label)
            for note in record.notes:
                if (trace_id, note.text) in existing_notes:
                    continue
                existing_notes.add((trace_id, note.text))
                new_notes.append(
                    (
                        Note(
                            trace_id=trace_id,
                            author_id=self.note_author_id,
                            text=note.text,
                            created_at=now,
                            updated_at=now,
                        ),
                        note.failure_modes,
                    )
                )

        feedback = [(trace_id, item) for record, trace_id, _ in annotated for item in record.feedback]
        if feedback:
            feedback_store(items=feedback, key_by_content=True, now=now, report=False)
        if new_labels:
            Label.objects.bulk_create(new_labels)
        if changed_labels:
            Label.objects.bulk_update(
                changed_labels, ["verdict", "critique", "author", "updated_at", "criterion_version"]
            )
        # A new label's entry is its first (every label gets one when made, here or by label_submit); a changed
        # label's is a later one.
        history = [
            LabelChange(
                label_id=label.pk,
                criterion_id=label.criterion_id,
                is_first=is_first,
                verdict=label.verdict,
                critique=label.critique,
                author_id=self.expert_id,
                changed_at=now,
                criterion_version=label.criterion_version,
            )
            for labels, is_first in ((new_labels, True), (changed_labels, False))
            for label in labels
        ]
        if history:
            LabelChange.objects.bulk_create(history)
        if new_notes:
            Note.objects.bulk_create([note for note, _ in new_notes])
            links = [
                NoteFailureMode(
                    note_id=note.pk, failure_mode_id=self._failure_mode_id(name), trace_id=note.trace_id, created_at=now
                )
                for note, names in new_notes
                for name in names
            ]
            if links:
                NoteFailureMode.objects.bulk_create(links)


# --- public entry points -------------------------------------------------------------------------------------


def import_stream(
    *,
    project: Project,
    stream: BinaryIO,
    fmt: str = "jsonl",
    on_conflict: str = "skip",
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    user: AbstractBaseUser | None = None,
) -> IngestReport:
    """Import a JSONL or CSV byte stream into `project`; rejections carry the line number.

    Raises IngestError when the file as a whole cannot be read (then nothing is written).
    `progress` is called with the number of bytes processed after every batch.
    """
    on_batch = (lambda done, _report: progress(done)) if progress else None
    return _import_stream(
        project=project, stream=stream, fmt=fmt, on_conflict=on_conflict, strict=strict, on_batch=on_batch, user=user
    )


def import_path(
    *,
    project: Project,
    path: str | Path,
    fmt: str | None = None,
    on_conflict: str = "skip",
    strict: bool = False,
    progress: Callable[[int], None] | None = None,
    user: AbstractBaseUser | None = None,
    subprocess: bool | None = None,
) -> IngestReport:
    """Import a JSONL or CSV file (optionally .gz; the format follows the name unless given), like import_stream.

    On PostgreSQL a large file is parsed in a child process while this one writes (`subprocess=None` decides by
    size; True/False force it). Raises IngestError when the file cannot be opened or read as a whole.
    """
    on_batch = (lambda done, _report: progress(done)) if progress else None
    return _import_path(
        project=project,
        path=str(path),
        fmt=fmt or format_for_path(str(path)),
        on_conflict=on_conflict,
        strict=strict,
        on_batch=on_batch,
        user=user,
        subprocess=subprocess,
    )


def _file_importer(*, project: Project, fmt: str, on_conflict: str, strict: bool, user: AbstractBaseUser | None):
    if fmt not in FORMATS:
        raise IngestError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return _Importer(
        project=project,
        on_conflict=on_conflict,
        strict=strict,
        user=user,
        by_line=True,
        max_bytes=settings.EVALSTUDIO_MAX_TRACE_BYTES,
    )


def _import_stream(
    *,
    project: Project,
    stream: BinaryIO,
    fmt: str,
    on_conflict: str,
    strict: bool,
    on_batch: Callable[[int, IngestReport], None] | None,
    user: AbstractBaseUser | None,
) -> IngestReport:
    importer = _file_importer(project=project, fmt=fmt, on_conflict=on_conflict, strict=strict, user=user)
    options = importer.options
    try:
        return importer.run(
            prepare_batches(read_records(stream, fmt=fmt, max_bytes=options.max_bytes), options), on_batch
        )
    except FormatError as exc:
        raise IngestError(str(exc)) from None


def _import_path(
    *,
    project: Project,
    path: str,
    fmt: str,
    on_conflict: str,
    strict: bool,
    on_batch: Callable[[int, IngestReport], None] | None,
    user: AbstractBaseUser | None,
    subprocess: bool | None,
) -> IngestReport:
    importer = _file_importer(project=project, fmt=fmt, on_conflict=on_conflict, strict=strict, user=user)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise IngestError(f"cannot read the file: {exc.strerror or exc}") from None
    if subprocess is None:
        subprocess = size >= SUBPROCESS_MIN_BYTES
    if not (subprocess and importer.postgres):
        try:
            with open_path(path) as stream:
                return _import_stream(
                    project=project,
                    stream=stream,
                    fmt=fmt,
                    on_conflict=on_conflict,
                    strict=strict,
                    on_batch=on_batch,
                    user=user,
                )
        except OSError as exc:
            raise IngestError(f"cannot read the file: {exc.strerror or exc}") from None
    batches = batches_in_subprocess(path, fmt=fmt, options=importer.options)
    try:
        return importer.run(batches, on_batch)
    except FormatError as exc:
        raise IngestError(str(exc)) from None
    finally:
        batches.close()  # stops the parser when writing failed half-way


def _objects_as_raw(records: Iterable[object]) -> Iterator[RawRecord]:
    for index, value in enumerate(records):
        if isinstance(value, RawRecord):
            yield RawRecord(index, value=value.value, error=value.error, size=value.size)
            continue
        try:
            size = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        except (TypeError, ValueError):
            size = 0
        yield RawRecord(index, value=value, size=size)


def import_records(
    *,
    project: Project,
    records: Iterable[object],
    on_conflict: str = "skip",
    strict: bool = False,
    user: AbstractBaseUser | None = None,
) -> IngestReport:
    """Import already-decoded records (the REST API); rejections carry the 0-based `index` and the `id`.

    An item may also be a `RawRecord` carrying a decoding error (a bad NDJSON line), so it is reported in place.
    An empty iterable is fine here (nothing to do) — unlike an empty file.
    """
    importer = _Importer(
        project=project,
        on_conflict=on_conflict,
        strict=strict,
        user=user,
        by_line=False,
        max_bytes=settings.EVALSTUDIO_MAX_TRACE_BYTES,
    )
    items = list(records) if not isinstance(records, list) else records
    if not items:
        return IngestReport()
    return importer.run(prepare_batches(_objects_as_raw(items), importer.options), None)


# --- browser uploads (run by the worker) -----------------------------------------------------------------------


def import_job_execute(*, job: ImportJob) -> ImportJob:
    """Import the job's file, saving progress and counts after every batch; ends DONE or FAILED.

    The caller has claimed the job (status RUNNING). The file is read through Django's default storage (local files
    under MEDIA_ROOT, or object storage with EVALSTUDIO_STORAGE_URL), so a worker on another machine than the web
    server reads what the web server stored. It is deleted once this attempt has ended the job.
    """
    upload = _StoredUpload(job.file_path)

    def save_progress(bytes_done: int, report: IngestReport) -> None:
        run_heartbeat(
            run=job,
            bytes_done=bytes_done,
            created_count=report.created,
            updated_count=report.updated,
            duplicate_count=report.duplicates,
            rejected_count=len(report.rejected),
            rejections=[r.as_dict() for r in report.rejected[:JOB_REJECTIONS_KEPT]],
        )

    project = Project.objects.get(pk=job.project_id)
    if not upload.exists():
        run_fail(run=job, error="the uploaded file is gone; upload it again")
        job.refresh_from_db()
        return job
    options = {
        "project": project,
        "fmt": job.file_format,
        "on_conflict": job.on_conflict,
        "strict": False,
        "on_batch": save_progress,
        "user": job.user,
    }
    try:
        with run_working(run=job):
            local = upload.local_path()
            if local is not None:
                # A local file can be parsed in a subprocess (large files), as `import_traces` does.
                report = _import_path(path=local, subprocess=None, **options)
            else:
                # Object storage: read as a stream (the storage spools it to a temporary file, not to memory).
                try:
                    with upload.open() as stream:
                        report = _import_stream(stream=stream, **options)
                except OSError as exc:
                    raise IngestError(f"cannot read the file: {exc.strerror or exc}") from None
    except IngestError as exc:
        ended = run_fail(run=job, error=str(exc))
    except Exception as exc:
        logger.exception("Import job %s failed", job.pk)
        run_fail(run=job, error=f"unexpected error: {type(exc).__name__}: {exc}")
        raise
    else:
        save_progress(job.bytes_total, report)
        ended = run_finish(run=job)
    # An attempt that lost the job (taken over after a stall) leaves the file to the attempt that now owns it.
    if ended:
        upload.delete()
    job.refresh_from_db()
    return job


class _StoredUpload:
    """An ImportJob's file: a name in the default storage, or an absolute path for jobs queued before uploads went
    through the storage API."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.legacy = os.path.isabs(name)

    def exists(self) -> bool:
        return Path(self.name).exists() if self.legacy else default_storage.exists(self.name)

    def local_path(self) -> str | None:
        if self.legacy:
            return self.name
        try:
            return default_storage.path(self.name)
        except NotImplementedError:  # object storage has no local path
            return None

    def open(self) -> BinaryIO:
        return default_storage.open(self.name, "rb")  # type: ignore[return-value]

    def delete(self) -> None:
        if self.legacy:
            Path(self.name).unlink(missing_ok=True)
        else:
            default_storage.delete(self.name)
