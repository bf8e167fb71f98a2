"""Spans into the span table, and traces assembled from them on the worker.

`spans_store` runs in the receiver's request transaction: the spans (ON CONFLICT DO NOTHING, so a retried export
changes nothing) and one `SpanAssembly` row per touched trace are committed together before the 200 is sent, and the
drain task is queued after commit. The broker may be down: the rows stay and the next drain (queued by the next
request, or when a worker starts) assembles them.

`assembly_drain` claims pending rows with FOR UPDATE SKIP LOCKED (two workers never assemble one trace at once) and
deletes them in the transaction that writes the traces. A request that touches a trace being assembled upserts its
row (ON CONFLICT DO UPDATE), which waits for the drain's transaction and then inserts the row again: late spans are
never missed.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone
from psycopg import errors as psycopg_errors

from annotation.ingest import import_records
from annotation.models import Project, Span, SpanAssembly, Trace
from annotation.otel.conventions import NoRootSpan, trace_record
from annotation.otel.spans import SpanData
from core.queue import task_send_now

logger = logging.getLogger(__name__)

ASSEMBLE_TASK = "annotation.otel_assemble"
# Traces claimed per drain transaction: large enough that import_records' batching pays, small enough that a request
# touching one of them waits for a fraction of a second at most.
DRAIN_CHUNK = 500


def spans_store(*, project: Project, spans: Sequence[SpanData]) -> int:
    """Store `spans` (already-stored ones are ignored) and mark their traces for assembly, inside the caller's
    transaction; the drain is queued once it commits. Returns the number of spans given."""
    if not spans:
        return 0
    now = timezone.now()
    # Sorted, so that two requests with overlapping spans take their row locks in one order (no deadlock).
    ordered = sorted(spans, key=lambda s: (s.trace_id, s.span_id))
    if connection.vendor == "postgresql":
        _copy_spans(project_id=project.pk, spans=ordered, now=now)
    else:
        Span.objects.bulk_create(
            [
                Span(project=project, received_at=now, **{name: getattr(s, name) for name in _SPAN_FIELDS})
                for s in ordered
            ],
            ignore_conflicts=True,
            batch_size=500,
        )
    trace_ids = sorted({s.trace_id for s in spans})
    SpanAssembly.objects.bulk_create(
        [SpanAssembly(project=project, trace_id=trace_id, marked_at=now) for trace_id in trace_ids],
        update_conflicts=True,
        unique_fields=["project", "trace_id"],
        update_fields=["marked_at"],
    )
    transaction.on_commit(assembly_queue)
    return len(spans)


_SPAN_FIELDS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "kind",
    "start_ns",
    "end_ns",
    "status_code",
    "status_message",
    "attributes",
    "events",
    "links",
    "resource",
    "scope",
)
_JSON_FIELDS = frozenset({"attributes", "events", "links", "resource", "scope"})
_COLUMNS = ", ".join(("project_id", *_SPAN_FIELDS, "received_at"))


def _copy_spans(*, project_id: int, spans: Sequence[SpanData], now: datetime) -> None:
    """COPY the spans into the table; when one is already there (a retried export), COPY them into a temporary
    table and INSERT … ON CONFLICT DO NOTHING instead. Django's bulk_create quotes every value on the client and
    took ~4x longer per span (bench/otlp_ingest.py)."""
    rows = [
        (
            project_id,
            *(json.dumps(getattr(s, name)) if name in _JSON_FIELDS else getattr(s, name) for name in _SPAN_FIELDS),
            now,
        )
        for s in spans
    ]
    with connection.cursor() as cursor:
        raw_cursor = cursor.cursor
        try:
            # A savepoint, so that a unique violation undoes just this COPY.
            with transaction.atomic(), raw_cursor.copy(f"COPY annotation_span ({_COLUMNS}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
            return
        except psycopg_errors.UniqueViolation:
            pass
        raw_cursor.execute(
            "CREATE TEMP TABLE _otlp_spans (project_id bigint, trace_id text, span_id text, parent_span_id text,"
            " name text, kind text, start_ns bigint, end_ns bigint, status_code text, status_message text,"
            " attributes jsonb, events jsonb, links jsonb, resource jsonb, scope jsonb, received_at timestamptz)"
            " ON COMMIT DROP"
        )
        with raw_cursor.copy(f"COPY _otlp_spans ({_COLUMNS}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        raw_cursor.execute(
            f"INSERT INTO annotation_span ({_COLUMNS}) SELECT {_COLUMNS} FROM _otlp_spans"
            " ON CONFLICT (project_id, trace_id, span_id) DO NOTHING"
        )
        raw_cursor.execute("DROP TABLE _otlp_spans")


def assembly_queue() -> bool:
    """Queue one drain without waiting on the broker (False when it is down: the rows wait for the next drain)."""
    return task_send_now(ASSEMBLE_TASK)


def assembly_resume() -> list[str]:
    """On worker start: queue a drain when traces wait for assembly (their request's queueing may have failed)."""
    if SpanAssembly.objects.exists() and assembly_queue():
        return ["drain"]
    return []


def span_data(span: Span) -> SpanData:
    return SpanData(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=span.name,
        kind=span.kind,
        start_ns=span.start_ns,
        end_ns=span.end_ns,
        status_code=span.status_code,
        status_message=span.status_message,
        attributes=span.attributes,
        events=span.events,
        links=span.links,
        resource=span.resource,
        scope=span.scope,
    )


@dataclass
class DrainReport:
    assembled: int = 0  # traces created or updated
    waiting_for_root: int = 0  # their root span has not arrived; assembled when it does
    kept_reviewed: int = 0  # the expert reviewed them: content kept as the expert saw it
    rejected: int = 0  # trace_record's output refused by the native format (logged)

    def add(self, other: DrainReport) -> None:
        for name in ("assembled", "waiting_for_root", "kept_reviewed", "rejected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))


def assembly_drain(*, chunk: int = DRAIN_CHUNK, max_chunks: int | None = None) -> DrainReport:
    """Assemble every trace marked for assembly, one transaction per chunk, until none is left (or `max_chunks`)."""
    total = DrainReport()
    done = 0
    while max_chunks is None or done < max_chunks:
        report, claimed = _drain_chunk(chunk)
        total.add(report)
        done += 1
        if claimed < chunk:
            break
    return total


def _drain_chunk(chunk: int) -> tuple[DrainReport, int]:
    report = DrainReport()
    with transaction.atomic():
        pending = list(
            SpanAssembly.objects.select_for_update(skip_locked=True)
            .order_by("marked_at", "id")
            .values_list("id", "project_id", "trace_id")[:chunk]
        )
        if not pending:
            return report, 0
        by_project: dict[int, list[str]] = defaultdict(list)
        for _pk, project_id, trace_id in pending:
            by_project[project_id].append(trace_id)
        for project_id, trace_ids in by_project.items():
            project = Project.objects.filter(pk=project_id).first()
            if project is not None:
                report.add(_assemble(project=project, trace_ids=trace_ids))
        SpanAssembly.objects.filter(pk__in=[pk for pk, _p, _t in pending]).delete()
    return report, len(pending)


def _assemble(*, project: Project, trace_ids: Iterable[str]) -> DrainReport:
    report = DrainReport()
    spans_by_trace: dict[str, list[SpanData]] = defaultdict(list)
    for span in Span.objects.filter(project=project, trace_id__in=list(trace_ids)).order_by("trace_id", "start_ns"):
        spans_by_trace[span.trace_id].append(span_data(span))
    # Locked: an expert labelling one of these now waits for this transaction, and one who labelled before is seen.
    existing = dict(
        Trace.objects.select_for_update()
        .filter(project=project, external_id__in=list(spans_by_trace))
        .values_list("external_id", "reviewed_at")
    )
    new_records, updated_records = [], []
    for trace_id, spans in spans_by_trace.items():
        if trace_id in existing and existing[trace_id] is not None:
            # Reviewed: the late spans are stored and shown on the trace page; the reviewed content stays.
            report.kept_reviewed += 1
            continue
        try:
            record = trace_record(spans)
        except NoRootSpan:
            report.waiting_for_root += 1
            continue
        except Exception:  # noqa: BLE001 - one malformed trace must not block the chunk (retried forever)
            # Its spans stay stored and shown; the next span of the trace marks it again.
            logger.exception("OTel trace %s of project %s could not be read", trace_id, project.slug)
            report.rejected += 1
            continue
        (updated_records if trace_id in existing else new_records).append(record)
    for records, on_conflict in ((new_records, "skip"), (updated_records, "update")):
        if records:
            result = import_records(project=project, records=records, on_conflict=on_conflict)
            report.assembled += result.created + result.updated
            for rejection in result.rejected:
                report.rejected += 1
                logger.warning("OTel trace %s of project %s not assembled: %s", rejection.id, project.slug, rejection)
    return report
