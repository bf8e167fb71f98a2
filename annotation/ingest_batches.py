"""Turning raw records into write-ready batches. Django-free, so that it can run in a separate process.

An import has two halves of about equal cost on PostgreSQL: Python decoding and validating each record, and the
server inserting the rows and maintaining the trace table's indexes. Done one after the other they leave a core
idle half of the time. For a large file `batches_in_subprocess` runs this module in a child process, which parses
the next batch while the parent streams the previous one into the database; both cores then work. Everything else
(small files, streams without a path, the REST API, SQLite) calls `prepare_batches` in process — the same code.
"""

from __future__ import annotations

import gzip
import os
import pickle
import subprocess
import sys
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from annotation.trace_format import (
    FormatError,
    RawRecord,
    RecordError,
    TraceRecord,
    parse_record,
    record_id,
    shuffle_key,
)
from annotation.trace_readers import read_records

# The columns a prepared batch's COPY text holds, in order. The trace table takes them as they are; the temporary
# table of the re-import path has the same columns after its own `ord`.
COPY_COLUMNS = (
    "project_id",
    "created_at",
    "external_id",
    "input",
    "output",
    "messages",
    "context",
    "metadata",
    "session_id",
    "task_id",
    "trial",
    "source",
    "occurred_at",
    "shuffle_key",
    "reviewed_at",
    "reference",
)


@dataclass(frozen=True)
class Rejection:
    error: str
    line: int | None = None
    index: int | None = None
    id: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else f"index {self.index}"
        return f"{where}: {self.error}"

    def as_dict(self) -> dict[str, Any]:
        if self.line is not None:
            return {"line": self.line, "id": self.id, "error": self.error}
        return {"index": self.index, "id": self.id, "error": self.error}


@dataclass(frozen=True)
class CopyTarget:
    """What the COPY rows need to know about the project."""

    project_id: int
    queue_seed: str


@dataclass(frozen=True)
class BatchOptions:
    batch_size: int
    max_bytes: int
    strict: bool
    # Rejections name the line (files) or the 0-based index (API payloads).
    by_line: bool
    # Why a record carrying labels (notes) must be rejected, or None when the project can take them.
    labels_error: str | None
    notes_error: str | None
    # Notes count as the expert's review when they are written in the expert's name.
    notes_are_experts: bool
    # Set on PostgreSQL: batches then carry COPY text; otherwise they carry the records for the ORM.
    copy: CopyTarget | None


@dataclass
class PreparedBatch:
    """A batch ready for the database, plus the rejections met since the previous one (in file order)."""

    now: datetime
    # Bytes of input consumed once this batch is written (progress).
    bytes_done: int
    rejections: list[Rejection] = field(default_factory=list)
    external_ids: list[str] = field(default_factory=list)
    # The source of each trace, in the order of external_ids (announced to the later stages once written).
    sources: list[str] = field(default_factory=list)
    # Records with labels or notes: written after their traces, which needs the trace ids.
    annotated: list[TraceRecord] = field(default_factory=list)
    # All records of the batch, on the ORM path only (COPY text replaces them on PostgreSQL).
    records: list[TraceRecord] = field(default_factory=list)
    # external_id → reviewed_at for traces whose import counts as the expert's review.
    reviewed: dict[str, datetime] = field(default_factory=dict)
    copy_data: bytes = b""

    def __len__(self) -> int:
        return len(self.external_ids)


def open_path(path: str) -> BinaryIO:
    """A file to import, decompressed when its name ends in .gz. Raises OSError."""
    if path.lower().endswith(".gz"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")  # noqa: SIM115 - the caller closes it


# --- COPY text ---------------------------------------------------------------------------------------------------


def _copy_text(value: str) -> str:
    # COPY's text format: backslash, tab, newline and carriage return are escaped; NUL never gets here (the
    # trace format refuses it).
    if "\\" in value:
        value = value.replace("\\", "\\\\")
    if "\t" in value or "\n" in value or "\r" in value:
        value = value.replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return value


def copy_line(
    record: TraceRecord,
    *,
    project_id: int,
    now: str,
    seed: str,
    reviewed_at: datetime | None,
) -> str:
    """One row of COPY text in COPY_COLUMNS order; `now` is the batch time, already formatted."""
    return "\t".join(
        (
            str(project_id),
            now,
            _copy_text(record.external_id),
            _copy_text(record.input),
            _copy_text(record.output),
            r"\N" if record.messages_json is None else _copy_text(record.messages_json),
            r"\N" if record.context_json is None else _copy_text(record.context_json),
            _copy_text(record.metadata_json),
            _copy_text(record.session_id),
            _copy_text(record.task_id),
            r"\N" if record.trial is None else str(record.trial),
            _copy_text(record.source),
            now if record.timestamp is None else record.timestamp.isoformat(),
            str(shuffle_key(seed, record.external_id)),
            r"\N" if reviewed_at is None else reviewed_at.isoformat(),
            r"\N" if record.reference_json is None else _copy_text(record.reference_json),
        )
    )


# --- batching ------------------------------------------------------------------------------------------------------


class _Batcher:
    def __init__(self, options: BatchOptions) -> None:
        self.options = options
        self.last_stamp: datetime | None = None
        self.rejected_any = False

    def reject(self, raw: RawRecord, error: str, into: list[Rejection]) -> None:
        self.rejected_any = True
        position = {"line": raw.line} if self.options.by_line else {"index": raw.line}
        into.append(Rejection(error=error, id=record_id(raw.value), **position))

    def validate(self, raw: RawRecord, rejections: list[Rejection]) -> TraceRecord | None:
        options = self.options
        if raw.error is not None:
            self.reject(raw, raw.error, rejections)
            return None
        if raw.size > options.max_bytes:
            self.reject(raw, f"record is {raw.size:,} bytes, over the limit of {options.max_bytes:,} bytes", rejections)
            return None
        try:
            record = parse_record(raw.value)
        except RecordError as exc:
            self.reject(raw, str(exc), rejections)
            return None
        if record.labels and options.labels_error:
            self.reject(raw, options.labels_error, rejections)
            return None
        if record.notes and options.notes_error:
            self.reject(raw, options.notes_error, rejections)
            return None
        return record

    def next_stamp(self, now: datetime) -> datetime:
        # Strictly increasing, so the order of review (the saturation curve) follows file order.
        stamp = now if self.last_stamp is None or now > self.last_stamp else self.last_stamp + timedelta(microseconds=1)
        self.last_stamp = stamp
        return stamp

    def build(self, records: list[TraceRecord], rejections: list[Rejection], bytes_done: int) -> PreparedBatch:
        options = self.options
        now = datetime.now(UTC)
        batch = PreparedBatch(now=now, bytes_done=bytes_done, rejections=rejections)
        batch.external_ids = [r.external_id for r in records]
        batch.sources = [r.source for r in records]
        for r in records:
            # The review log records the expert's attention: their labels, or notes written in their name.
            if r.labels or r.notes:
                batch.annotated.append(r)
                if r.labels or options.notes_are_experts:
                    batch.reviewed[r.external_id] = self.next_stamp(now)
            elif r.feedback:
                # Users' feedback is written after the trace too, but it is not the expert's attention.
                batch.annotated.append(r)
        if options.copy is None:
            batch.records = records
        else:
            project_id, seed, reviewed = options.copy.project_id, options.copy.queue_seed, batch.reviewed
            stamp = now.isoformat()
            lines = [
                copy_line(r, project_id=project_id, now=stamp, seed=seed, reviewed_at=reviewed.get(r.external_id))
                for r in records
            ]
            lines.append("")
            batch.copy_data = "\n".join(lines).encode("utf-8")
        return batch


def prepare_batches(raw_records: Iterable[RawRecord], options: BatchOptions) -> Iterator[PreparedBatch]:
    """Validate every record and group the valid ones into batches, in file order.

    The last batch may hold no records, only the rejections and bytes after the previous one. Raises FormatError
    when the input holds no record at all. Once strict mode has a rejection nothing will be written, so the rest
    is only validated, to report it.
    """
    batcher = _Batcher(options)
    records: list[TraceRecord] = []
    ids: set[str] = set()
    rejections: list[Rejection] = []
    bytes_done = 0
    seen_any = False
    for raw in raw_records:
        seen_any = True
        record = batcher.validate(raw, rejections)
        if record is not None and not (options.strict and batcher.rejected_any):
            # The same id twice in one batch would make one statement touch a row twice; cutting the batch keeps
            # file order (the second occurrence is then a duplicate, or an update).
            if record.external_id in ids or len(records) >= options.batch_size:
                yield batcher.build(records, rejections, bytes_done)
                records, ids, rejections = [], set(), []
            records.append(record)
            ids.add(record.external_id)
        bytes_done += raw.size
    if not seen_any:
        raise FormatError("the file contains no traces")
    if options.strict and batcher.rejected_any:
        records = []
    yield batcher.build(records, rejections, bytes_done)


# --- the child process -------------------------------------------------------------------------------------------


class ParserCrashed(RuntimeError):
    """The parser process failed in an unexpected way; its traceback is the message."""


def _produce(path: str, fmt: str, options: BatchOptions, out: BinaryIO) -> None:
    """The child's side: pickles ("batch", PreparedBatch)… then ("end", None), or ("format", message) when the
    file as a whole cannot be read, or ("crash", traceback)."""

    def send(message: tuple[str, Any]) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    try:
        with open_path(path) as stream:
            for batch in prepare_batches(read_records(stream, fmt=fmt, max_bytes=options.max_bytes), options):
                send(("batch", batch))
        send(("end", None))
    except FormatError as exc:
        send(("format", str(exc)))
    except OSError as exc:
        send(("format", f"cannot read the file: {exc.strerror or exc}"))
    except Exception:
        send(("crash", traceback.format_exc()))


def batches_in_subprocess(path: str, *, fmt: str, options: BatchOptions) -> Iterator[PreparedBatch]:
    """`prepare_batches` over the file at `path`, run in a child process one batch ahead of the caller.

    The child is a fresh Python running `parser_main`, talking pickle over a pipe, rather than a
    multiprocessing child: that would re-import the caller's main module, which a worker, a shell or a script
    may not guard. The pipe holds about one batch, so the child never runs far ahead and memory stays flat.
    Closing the generator early (an error while writing) stops the child.
    """
    root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
    child = subprocess.Popen(
        [sys.executable, "-c", "from annotation.ingest_batches import parser_main; parser_main()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        cwd=root,
    )
    assert child.stdin is not None and child.stdout is not None
    try:
        pickle.dump((path, fmt, options), child.stdin, protocol=pickle.HIGHEST_PROTOCOL)
        child.stdin.close()
        while True:
            try:
                kind, payload = pickle.load(child.stdout)
            except EOFError:
                raise ParserCrashed(f"the parser process died (exit status {child.wait()})") from None
            if kind == "batch":
                yield payload
            elif kind == "end":
                return
            elif kind == "format":
                raise FormatError(payload)
            else:
                raise ParserCrashed(payload)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        child.stdout.close()


def parser_main() -> None:
    """The parser process (see batches_in_subprocess): its job arrives pickled on stdin, batches leave on stdout."""
    _produce(*pickle.load(sys.stdin.buffer), out=sys.stdout.buffer)
