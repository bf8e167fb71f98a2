"""Storing and reading users' feedback on traces (annotation.models.Feedback), and feedback that came before its
trace (annotation.models.PendingFeedback)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from psycopg.types.json import Jsonb

from annotation.feedback import FeedbackRecord, parse_feedback_item
from annotation.models import Feedback, PendingFeedback, Trace


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


# --- feedback that arrives before its trace (Langfuse SDK scores) ------------------------------------------------


# The advisory lock's first key, naming its purpose ("FBK"); the second is the project's id.
PENDING_FEEDBACK_LOCK = 0x46424B


def _pending_lock(project_id: int, *, shared: bool) -> None:
    """Orders a feedback sender's "no such trace yet, keep it pending" against an ingestion's "claim what is
    pending for the traces I store", per project (PostgreSQL advisory lock, held to the end of the transaction).
    Without it a score could be parked just after the ingestion looked and stay pending forever. Ingestion
    batches take it shared, so they never wait for each other. SQLite serialises writers by itself."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
        cursor.execute(f"SELECT {function}(%s, %s)", [PENDING_FEEDBACK_LOCK, project_id])


@dataclass
class ExternalFeedbackOutcome:
    stored: int = 0  # items attached to a trace now (new rows; retries count here too, storing nothing)
    pending: int = 0  # items kept until their trace arrives


def feedback_store_by_external_id(
    *, project_id: int, items: Iterable[tuple[str, FeedbackRecord]], now: datetime | None = None
) -> ExternalFeedbackOutcome:
    """Add (trace external id, item) pairs from a sender that may be ahead of the trace (a Langfuse score): items
    for a stored trace become Feedback rows; the others wait in PendingFeedback, and the ingestion that stores
    their trace claims them. Items are keyed (their id, else their content), so a retry stores nothing twice."""
    now = now or timezone.now()
    pairs = list(items)
    outcome = ExternalFeedbackOutcome()
    with transaction.atomic():
        _pending_lock(project_id, shared=False)
        trace_ids = dict(
            Trace.objects.filter(
                project_id=project_id, external_id__in={external_id for external_id, _ in pairs}
            ).values_list("external_id", "id")
        )
        known = [(trace_ids[external_id], record) for external_id, record in pairs if external_id in trace_ids]
        waiting = [
            PendingFeedback(
                project_id=project_id,
                external_id=external_id,
                item=record.as_dict(),
                client_id=record.client_id or record.content_key(),
                received_at=now,
            )
            for external_id, record in pairs
            if external_id not in trace_ids
        ]
        if known:
            feedback_store(items=known, key_by_content=True, now=now, report=False)
        if waiting:
            PendingFeedback.objects.bulk_create(waiting, ignore_conflicts=True)
        cutoff = now - timedelta(days=settings.EVALSTUDIO_PENDING_FEEDBACK_DAYS)
        PendingFeedback.objects.filter(project_id=project_id, received_at__lt=cutoff).delete()
    outcome.stored, outcome.pending = len(known), len(waiting)
    return outcome


def pending_feedback_claim(*, project_id: int, external_ids: Collection[str], now: datetime) -> int:
    """Inside an ingestion's transaction, after its traces are written: the feedback waiting for any of them
    becomes theirs. One index probe when nothing waits for the project (the usual case)."""
    _pending_lock(project_id, shared=True)
    if not PendingFeedback.objects.filter(project_id=project_id).exists():
        return 0
    waiting = list(PendingFeedback.objects.filter(project_id=project_id, external_id__in=list(external_ids)))
    if not waiting:
        return 0
    trace_ids = dict(
        Trace.objects.filter(project_id=project_id, external_id__in={row.external_id for row in waiting}).values_list(
            "external_id", "id"
        )
    )
    items = []
    for row in waiting:
        record = parse_feedback_item(row.item, f"pending feedback {row.pk}")
        items.append((trace_ids[row.external_id], replace(record, client_id=row.client_id)))
    feedback_store(items=items, key_by_content=True, now=now, report=False)
    PendingFeedback.objects.filter(pk__in=[row.pk for row in waiting]).delete()
    return len(items)
