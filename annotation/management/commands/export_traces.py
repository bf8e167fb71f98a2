"""`export_traces --project SLUG [--format jsonl|csv|parquet] [--to-storage] PATH`: traces with labels, notes and
failure modes; `--to-storage` writes into the app's file storage (object storage when EVALSTUDIO_STORAGE_URL is set).

What this writes, `import_traces` reads back unchanged: records go through `trace_format.serialize_trace`, and an
export of a re-imported export is byte-identical. Traces are streamed in id order, so memory stays flat.
"""

from __future__ import annotations

import csv
import io
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

from django.core.files import File
from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Prefetch, QuerySet

from annotation.feedback_services import feedback_record
from annotation.models import Feedback, Label, Note, Project, Trace
from annotation.taxonomy_format import csv_safe
from annotation.trace_format import FIELDS, LabelRecord, NoteRecord, csv_row, dumps, serialize_trace

CHUNK = 2000
EXPORT_FORMATS = ("jsonl", "csv", "parquet")


def export_records(project: Project, traces: QuerySet[Trace] | None = None) -> Iterator[dict[str, Any]]:
    """Every trace of the project (or the given queryset of its traces) as a record of the trace format, in id
    order."""
    traces = (
        (project.traces if traces is None else traces.filter(project=project))
        .order_by("id")
        .only("id", "external_id", *Trace.CONTENT_FIELDS)
        .prefetch_related(
            Prefetch(
                "labels",
                queryset=Label.objects.select_related("criterion").only(
                    "id", "trace_id", "verdict", "critique", "criterion__name"
                ),
            ),
            Prefetch("notes", queryset=Note.objects.order_by("created_at", "id").prefetch_related("failure_modes")),
            Prefetch("feedback", queryset=Feedback.objects.order_by("received_at", "id")),
        )
    )
    for trace in traces.iterator(chunk_size=CHUNK):
        yield serialize_trace(
            external_id=trace.external_id,
            input=trace.input,
            output=trace.output,
            messages=trace.messages,
            context=trace.context,
            metadata=trace.metadata,
            session_id=trace.session_id,
            task_id=trace.task_id,
            trial=trace.trial,
            source=trace.source,
            occurred_at=trace.occurred_at,
            labels=[
                LabelRecord(criterion=label.criterion.name, verdict=label.verdict, critique=label.critique)
                for label in trace.labels.all()
            ],
            notes=[
                NoteRecord(text=note.text, failure_modes=tuple(mode.name for mode in note.failure_modes.all()))
                for note in trace.notes.all()
            ],
            feedback=[feedback_record(row) for row in trace.feedback.all()],
            reference=trace.reference,
        )


def write_jsonl(records: Iterator[dict[str, Any]], out: BinaryIO) -> int:
    count = 0
    for record in records:
        out.write(dumps(record).encode("utf-8") + b"\n")
        count += 1
    return count


def write_csv(records: Iterator[dict[str, Any]], out: BinaryIO) -> int:
    text = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
    writer = csv.writer(text)
    writer.writerow(FIELDS)
    count = 0
    for record in records:
        # A cell such as `=HYPERLINK(…)` from a trace would run as a formula in the spreadsheet that opens the file;
        # read_csv undoes exactly this, so the export still reads back unchanged.
        writer.writerow([csv_safe(cell) for cell in csv_row(record)])
        count += 1
    text.flush()
    text.detach()  # leave `out` open for the caller
    return count


def write_parquet(records: Iterator[dict[str, Any]], path: str) -> int:
    # Imported lazily: pyarrow is heavy and only this format needs it.
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([(name, pa.int64() if name == "trial" else pa.string()) for name in FIELDS])
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        rows: list[list[str]] = []

        def flush() -> None:
            columns = list(zip(*rows, strict=True))
            arrays = []
            for name, values in zip(FIELDS, columns, strict=True):
                if name == "trial":
                    arrays.append(pa.array([int(v) if v else None for v in values], type=pa.int64()))
                else:
                    arrays.append(pa.array([v if v != "" else None for v in values], type=pa.string()))
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            rows.clear()

        for record in records:
            rows.append(csv_row(record))
            count += 1
            if len(rows) >= CHUNK:
                flush()
        if rows:
            flush()
    return count


class Command(BaseCommand):
    help = "Export a project's traces with labels, notes and failure modes (jsonl, csv or parquet)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH", help="output file, or - for standard output (jsonl/csv)")
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--format", choices=EXPORT_FORMATS, help="default: by extension, else jsonl")
        parser.add_argument(
            "--to-storage",
            action="store_true",
            help="PATH is a name in the app's file storage (the bucket when EVALSTUDIO_STORAGE_URL is set)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["path"]
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        fmt = options["format"] or _format_for(path)
        records = export_records(project)
        if options["to_storage"]:
            if path == "-":
                raise CommandError("--to-storage needs a name to store the export under, not -")
            count, stored = _export_to_storage(records, path, fmt)
            self.stderr.write(f"exported {count} traces from {project.slug} to the file storage as {stored}")
            return
        if fmt == "parquet":
            if path == "-":
                raise CommandError("parquet cannot be written to standard output; give a file name")
            count = write_parquet(records, path)
        else:
            writer = write_csv if fmt == "csv" else write_jsonl
            if path == "-":
                count = writer(records, sys.stdout.buffer)
                sys.stdout.buffer.flush()
            else:
                try:
                    out = open(path, "wb")  # noqa: SIM115 - closed below, after streaming
                except OSError as exc:
                    raise CommandError(f"{path}: {exc.strerror or exc}") from None
                with out:
                    count = writer(records, out)
        # The summary goes to stderr so that `-` output stays a clean data stream.
        self.stderr.write(f"exported {count} traces from {project.slug} to {path}")


def _export_to_storage(records: Iterator[dict[str, Any]], name: str, fmt: str) -> tuple[int, str]:
    """Write the export to a local temporary file (streamed, flat memory), then hand it to the default storage,
    which streams it on (a multipart upload to object storage). Returns the count and the name actually stored
    (the storage picks another name rather than overwrite an existing file)."""
    with tempfile.TemporaryDirectory(prefix="evalstudio-export-") as folder:
        local = os.path.join(folder, f"export.{fmt}")
        if fmt == "parquet":
            count = write_parquet(records, local)
        else:
            writer = write_csv if fmt == "csv" else write_jsonl
            with open(local, "wb") as out:
                count = writer(records, out)
        with open(local, "rb") as handle:
            stored = default_storage.save(name, File(handle))
    return count, stored


def _format_for(path: str) -> str:
    lowered = path.lower()
    if lowered.endswith(".csv"):
        return "csv"
    if lowered.endswith(".parquet"):
        return "parquet"
    return "jsonl"
