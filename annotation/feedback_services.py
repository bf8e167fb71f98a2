"""Storing and reading users' feedback on traces (annotation.models.Feedback)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from psycopg.types.json import Jsonb

from annotation.feedback import FeedbackRecord
from annotation.models import Feedback, Trace


@dataclass
class FeedbackOutcome:
    created: list[Feedback] = field(default_factory=list)
    # Items whose client id was already stored for the trace: a retry, nothing new written.
    duplicates: list[str] = field(default_factory=list)


def _row(trace_id: int, record: FeedbackRecord, client_id: str, now: datetime) -> Feedback:
    return Feedback(
        trace_id=trace_id,
        kind=record.kind,
        value=record.value,
        scale=record.scale,
        negative=record.negative,
        at=record.at,
        source=record.source,
        end_user=record.user,
        client_id=client_id,
        received_at=now,
    )


def feedback_store(
    *,
    items: Iterable[tuple[int, FeedbackRecord]],
    key_by_content: bool = False,
    now: datetime | None = None,
    report: bool = True,
) -> FeedbackOutcome:
    """Add (trace id, item) pairs. An item whose client id the trace already has is a duplicate and writes nothing
    (also under a concurrent retry: the unique constraint decides). `key_by_content` gives an item without an id
    its content hash as id — the file importers' choice, so that importing a file twice stores its feedback once;
    the API leaves such items keyless, so two identical thumbs from two users are two rows. `report=False` (an
    import, which counts traces, not feedback) skips finding out which rows were new: an empty outcome."""
    now = now or timezone.now()
    keyed_items: list[tuple[int, FeedbackRecord, str]] = []
    keyless: list[Feedback] = []
    for trace_id, record in items:
        client_id = record.client_id or (record.content_key() if key_by_content else "")
        if client_id:
            keyed_items.append((trace_id, record, client_id))
        else:
            keyless.append(_row(trace_id, record, "", now))
    outcome = FeedbackOutcome()
    with transaction.atomic():
        if keyless:
            outcome.created.extend(Feedback.objects.bulk_create(keyless))
        if keyed_items:
            if not report and connection.vendor == "postgresql":
                _copy_insert(keyed_items, now)
                return outcome
            keyed = [_row(trace_id, record, client_id, now) for trace_id, record, client_id in keyed_items]
            Feedback.objects.bulk_create(keyed, ignore_conflicts=True)
            if not report:
                return outcome
            # ignore_conflicts returns no ids; the rows stamped `now` are the ones this call wrote.
            stored = {
                (row.trace_id, row.client_id): row
                for row in Feedback.objects.filter(
                    trace_id__in={row.trace_id for row in keyed},
                    client_id__in={row.client_id for row in keyed},
                    received_at=now,
                )
            }
            for row in keyed:
                found = stored.pop((row.trace_id, row.client_id), None)
                if found is None:
                    outcome.duplicates.append(row.client_id)
                else:
                    outcome.created.append(found)
    return outcome


_COPY_COLUMNS = "trace_id, kind, value, scale, negative, at, source, end_user, client_id, received_at"


def _copy_insert(items: list[tuple[int, FeedbackRecord, str]], now: datetime) -> None:
    """COPY through a temporary table, then one INSERT … ON CONFLICT DO NOTHING (the partial unique key on the
    client id), with no model instances: building a 10,000-row INSERT in the ORM cost an import about three times
    the traces' own time."""
    with connection.cursor() as cursor:
        raw = cursor.cursor
        raw.execute(
            "CREATE TEMP TABLE _feedback_batch (ord int GENERATED ALWAYS AS IDENTITY, trace_id bigint, kind text,"
            " value jsonb, scale double precision, negative boolean, at timestamptz, source text, end_user text,"
            " client_id text, received_at timestamptz) ON COMMIT DROP"
        )
        with raw.copy(f"COPY _feedback_batch ({_COPY_COLUMNS}) FROM STDIN") as copy:
            for trace_id, r, client_id in items:
                copy.write_row(
                    (trace_id, r.kind, Jsonb(r.value), r.scale, r.negative, r.at, r.source, r.user, client_id, now)
                )
        raw.execute(
            f"INSERT INTO annotation_feedback ({_COPY_COLUMNS}) SELECT {_COPY_COLUMNS} FROM _feedback_batch"
            " ORDER BY ord ON CONFLICT DO NOTHING"
        )
        raw.execute("DROP TABLE _feedback_batch")


def trace_feedback(trace: Trace) -> QuerySet[Feedback]:
    """A trace's feedback, as the users gave it (their time when sent, else arrival order)."""
    return trace.feedback.order_by("received_at", "id")


def feedback_summary(rows: Iterable[Feedback]) -> dict[str, int]:
    """Counts for a trace page's heading: negative, positive (thumbs up or a rating above the bar), comments."""
    counts = {"negative": 0, "positive": 0, "comments": 0}
    for row in rows:
        if row.negative is None:
            counts["comments"] += 1
        elif row.negative:
            counts["negative"] += 1
        else:
            counts["positive"] += 1
    return counts


def feedback_record(row: Feedback) -> FeedbackRecord:
    """A stored row as the trace format's item (what export_traces writes; import reads it back as the same row)."""
    return FeedbackRecord(
        kind=row.kind,
        value=row.value,
        negative=row.negative,
        scale=row.scale,
        at=row.at,
        source=row.source,
        user=row.end_user,
        client_id=row.client_id,
    )
