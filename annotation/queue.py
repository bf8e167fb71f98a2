"""The review queue and the trace list: keyset reads that stay index scans at a million traces.

No OFFSET anywhere: "next" is the first row after the current one's sort key, "previous" the last one before it
in the review log, and list pages continue from a cursor. Each query is a range scan on one of Trace's indexes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import urlencode

from django.core.cache import cache
from django.db import connection
from django.db.models import BooleanField, Count, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTransform

from annotation.models import NoteFailureMode, Project, ReviewSession, ReviewSessionTrace, Trace

ORDERS = ("random", "newest", "oldest")
LIST_ORDERS = ("newest", "oldest")
REVIEWED_FILTERS = ("", "yes", "no")
PAGE_SIZE = 50
# Counting a million rows costs tens of milliseconds; below this many an exact count is cheap, above it the
# count is cached briefly (the total barely moves while someone reviews).
EXACT_COUNT_LIMIT = 10_000
COUNT_CACHE_SECONDS = 60

# Sort keys per order: (fields, descending). The id breaks ties, so the order is total and keysets are exact.
_SORT = {
    "random": (("shuffle_key", "id"), False),
    "oldest": (("occurred_at", "id"), False),
    "newest": (("occurred_at", "id"), True),
}


@dataclass(frozen=True)
class QueueParams:
    """What the reviewer asked for; travels in the query string so every link keeps it."""

    order: str = "random"
    source: str = ""
    meta_key: str = ""
    meta_value: str = ""
    reviewed: str = ""  # the trace list only: "" (all), "yes", "no"
    failure_mode: int | None = None  # traces with a note coded to this failure mode (the taxonomy's click-through)
    # Walk a review session: its traces in session position order (the order is then ignored). The views check
    # that the session belongs to the project.
    session: int | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, default_order: str = "random") -> QueueParams:
        order = query.get("order") or default_order
        if order not in ORDERS:
            order = default_order
        meta = (query.get("meta") or "").strip()
        key, _, value = meta.partition("=")
        reviewed = query.get("reviewed") or ""
        mode = (query.get("mode") or "").strip()
        session = (query.get("session") or "").strip()
        return cls(
            order=order,
            source=(query.get("source") or "").strip()[:64],
            meta_key=key.strip()[:200] if value or "=" in meta else "",
            meta_value=value.strip()[:500],
            reviewed=reviewed if reviewed in REVIEWED_FILTERS else "",
            failure_mode=_id_or_none(mode),
            session=_id_or_none(session),
        )

    @property
    def meta(self) -> str:
        return f"{self.meta_key}={self.meta_value}" if self.meta_key else ""

    @property
    def is_filtered(self) -> bool:
        return bool(self.source or self.meta_key or self.reviewed or self.failure_mode)

    def query_items(self) -> list[tuple[str, str]]:
        items = [("order", self.order)]
        if self.source:
            items.append(("source", self.source))
        if self.meta_key:
            items.append(("meta", self.meta))
        if self.reviewed:
            items.append(("reviewed", self.reviewed))
        if self.failure_mode:
            items.append(("mode", str(self.failure_mode)))
        if self.session:
            items.append(("session", str(self.session)))
        return items

    @property
    def querystring(self) -> str:
        """`?order=…&…`, ready to append to a URL."""
        return "?" + urlencode(self.query_items())

    def with_order(self, order: str) -> QueueParams:
        return replace(self, order=order)

    @property
    def filter_key(self) -> str:
        """A short, cache-safe digest of the filters (they may hold any character)."""
        raw = json.dumps([self.source, self.meta_key, self.meta_value, self.reviewed, self.failure_mode, self.session])
        return hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


def _id_or_none(raw: str) -> int | None:
    """A primary key from the query string; anything else (a hand-edited URL) is ignored."""
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def _metadata_filter(key: str, value: str) -> Q:
    candidates: list[object] = [value]
    # `meta=retries=2` should match the number 2 as well as the string "2"; metadata is JSON, typed loosely.
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = None
    if isinstance(parsed, bool | int | float):
        candidates.append(parsed)
    if connection.vendor == "postgresql":
        # `metadata @> {"k": v}` is answered by the GIN jsonb_path_ops index (migration 0002).
        condition = Q()
        for candidate in candidates:
            condition |= Q(metadata__contains={key: candidate})
        return condition
    # SQLite has no containment operator; a key lookup scans, which is fine at embedded scale. The lookup compares
    # JSON values (Django encodes each candidate), so "de" matches the string and "2" the string or the number.
    condition = Q()
    for candidate in candidates:
        condition |= Q(_meta_value=candidate)
    return condition


def _coded_to(failure_mode_id: int) -> Q | RawSQL:
    """Traces with a note coded to the mode; each once, however many of its notes carry it.

    On PostgreSQL `id = ANY(ARRAY(subquery))` runs the subquery once and looks the traces up by primary key. A plain
    `IN (subquery)` lets the planner walk the queue's order index hoping to meet a coded trace early; when the mode's
    traces are all reviewed it walked a million entries (5 s measured).
    """
    if connection.vendor != "postgresql":
        return Q(pk__in=NoteFailureMode.objects.filter(failure_mode_id=failure_mode_id).values("trace_id"))
    trace, link = Trace._meta.db_table, NoteFailureMode._meta.db_table
    return RawSQL(
        f'"{trace}"."id" = ANY(ARRAY(SELECT l."trace_id" FROM "{link}" l WHERE l."failuremode_id" = %s))',
        [failure_mode_id],
        output_field=BooleanField(),
    )


def filter_traces(queryset: QuerySet[Trace], params: QueueParams) -> QuerySet[Trace]:
    if params.source:
        queryset = queryset.filter(source=params.source)
    if params.meta_key:
        if connection.vendor != "postgresql":
            queryset = queryset.alias(_meta_value=KeyTransform(params.meta_key, "metadata"))
        queryset = queryset.filter(_metadata_filter(params.meta_key, params.meta_value))
    if params.failure_mode:
        queryset = queryset.filter(_coded_to(params.failure_mode))
    if params.reviewed == "yes":
        queryset = queryset.filter(reviewed_at__isnull=False)
    elif params.reviewed == "no":
        queryset = queryset.filter(reviewed_at__isnull=True)
    return queryset


def keyset_after(fields: tuple[str, str], values: tuple[object, object], *, descending: bool) -> Q:
    """Rows strictly after `values` in the order of `fields`. The redundant bound on the first field gives the
    planner an index range to start from instead of filtering the whole project's rows."""
    first, second = fields
    v1, v2 = values
    if descending:
        return Q(**{f"{first}__lte": v1}) & (Q(**{f"{first}__lt": v1}) | Q(**{first: v1, f"{second}__lt": v2}))
    return Q(**{f"{first}__gte": v1}) & (Q(**{f"{first}__gt": v1}) | Q(**{first: v1, f"{second}__gt": v2}))


def ordering_for(order: str) -> list[str]:
    fields, descending = _SORT[order]
    return [f"-{f}" for f in fields] if descending else list(fields)


def unreviewed(project: Project, params: QueueParams) -> QuerySet[Trace]:
    return filter_traces(Trace.objects.filter(project=project, reviewed_at__isnull=True), replace(params, reviewed=""))


# Within a review session (at most a thousand traces, sessions.MAX_SIZE): the session's rows in position order,
# joined to their traces. "First unreviewed after position p" walks the (session, position) unique index.


def _session_items(project: Project, params: QueueParams) -> QuerySet[ReviewSessionTrace]:
    """The session's rows, narrowed by the queue's other filters (source, metadata, mode) when there are any."""
    items = ReviewSessionTrace.objects.filter(session_id=params.session, session__project=project)
    if params.source or params.meta_key or params.failure_mode:
        # The session's ids first, then the filters on those few traces only: primary-key lookups.
        ids = list(items.values_list("trace_id", flat=True))
        narrowed = filter_traces(Trace.objects.filter(project=project, pk__in=ids), replace(params, reviewed=""))
        items = items.filter(trace_id__in=list(narrowed.values_list("pk", flat=True)))
    return items


def _session_done_field(params: QueueParams) -> str:
    strategy = ReviewSession.objects.filter(pk=params.session).values_list("strategy", flat=True).first()
    return ReviewSession.done_field_for(strategy)


def _session_next(project: Project, params: QueueParams, current: Trace | None) -> str | None:
    """The first open trace after `current`'s position, wrapping around; from the start when `current` is not in
    the session."""
    items = _session_items(project, params)
    open_items = items.filter(**{f"{_session_done_field(params)}__isnull": True}).order_by("position")
    position = 0
    if current is not None:
        position = items.filter(trace_id=current.pk).values_list("position", flat=True).first() or 0
        open_items = open_items.exclude(trace_id=current.pk)
    found = open_items.filter(position__gt=position).values_list("trace__external_id", flat=True).first()
    if found is None and position:
        found = open_items.values_list("trace__external_id", flat=True).first()
    return found


def queue_first(*, project: Project, params: QueueParams) -> str | None:
    """The external id of the first unreviewed trace in queue order, or None when the queue is done."""
    if params.session:
        return _session_next(project, params, None)
    return (
        unreviewed(project, params).order_by(*ordering_for(params.order)).values_list("external_id", flat=True).first()
    )


def queue_next(*, project: Project, params: QueueParams, current: Trace) -> str | None:
    """The next unreviewed trace after `current` in queue order, wrapping around to the start; None when no other
    unreviewed trace is left. `current` itself may already be reviewed: its sort key still marks the position."""
    if params.session:
        return _session_next(project, params, current)
    fields, descending = _SORT[params.order]
    values = (getattr(current, fields[0]), current.pk)
    queryset = unreviewed(project, params).exclude(pk=current.pk)
    ordering = ordering_for(params.order)
    after = queryset.filter(keyset_after(fields, values, descending=descending))
    found = after.order_by(*ordering).values_list("external_id", flat=True).first()
    if found is None:
        found = queryset.order_by(*ordering).values_list("external_id", flat=True).first()
    return found


def queue_previous(*, project: Project, current: Trace, params: QueueParams | None = None) -> str | None:
    """The trace reviewed just before `current` (the review log, by reviewed_at); for a trace not reviewed yet, the
    last one reviewed. Lets the expert step back through what was just done; within a session, only its traces."""
    if params is not None and params.session:
        # From the session's side: a join over its (at most a thousand) rows, never a walk of the review log.
        done = _session_done_field(params)
        items = ReviewSessionTrace.objects.filter(
            session_id=params.session, session__project=project, **{f"{done}__isnull": False}
        )
        done_at = items.filter(trace_id=current.pk).values_list(done, flat=True).first()
        items = items.exclude(trace_id=current.pk)
        if done_at is not None:
            items = items.filter(keyset_after((done, "trace_id"), (done_at, current.pk), descending=True))
        return items.order_by(f"-{done}", "-trace_id").values_list("trace__external_id", flat=True).first()
    log = Trace.objects.filter(project=project, reviewed_at__isnull=False).exclude(pk=current.pk)
    if current.reviewed_at is not None:
        log = log.filter(keyset_after(("reviewed_at", "id"), (current.reviewed_at, current.pk), descending=True))
    return log.order_by("-reviewed_at", "-id").values_list("external_id", flat=True).first()


def _bounded_count(queryset: QuerySet[Trace], cache_key: str) -> int:
    """Exact below EXACT_COUNT_LIMIT (only large counts are ever cached, so small projects never see a stale
    number); above it, counted once and reused for COUNT_CACHE_SECONDS."""
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    small = queryset.order_by()[: EXACT_COUNT_LIMIT + 1].count()
    if small <= EXACT_COUNT_LIMIT:
        return small
    total = queryset.order_by().count()
    cache.set(cache_key, total, COUNT_CACHE_SECONDS)
    return total


@dataclass(frozen=True)
class Progress:
    reviewed: int
    total: int

    @property
    def percent(self) -> int:
        return min(100, int(100 * self.reviewed / self.total)) if self.total else 0


def _cache_key(kind: str, project: Project, params: QueueParams) -> str:
    return f"{project.cache_key(kind)}:{params.filter_key}"


def _reviewed_count(project: Project, base: QuerySet[Trace], params: QueueParams) -> int:
    """Reviewed traces matching the filters, exact.

    Unfiltered, it is an index-only scan of the review log (~10 ms at 100,000 reviews). With filters every row
    must be checked, so the count is kept in the cache with the review-log position it covers, and each page only
    counts what was reviewed since: one review log range instead of a 100,000-row recount.
    """
    reviewed = base.filter(reviewed_at__isnull=False).order_by()
    if not (params.source or params.meta_key or params.failure_mode):
        return reviewed.count()
    newest = (
        Trace.objects.filter(project=project, reviewed_at__isnull=False)
        .order_by("-reviewed_at", "-id")
        .values_list("reviewed_at", "id")
        .first()
    )
    if newest is None:
        return 0
    key = _cache_key("reviewed-count", project, params)
    state = cache.get(key)
    upto = ~keyset_after(("reviewed_at", "id"), newest, descending=False)
    if state is not None:
        count, stamp, pk = state
        count += reviewed.filter(upto, keyset_after(("reviewed_at", "id"), (stamp, pk), descending=False)).count()
    else:
        count = reviewed.filter(upto).count()
    # Short-lived: traces deleted meanwhile would otherwise stay counted.
    cache.set(key, (count, newest[0], newest[1]), COUNT_CACHE_SECONDS)
    return count


def queue_progress(*, project: Project, params: QueueParams) -> Progress:
    """'n of N reviewed' for the queue's filters. N is cached briefly on large projects; n is exact. Within a
    session both are exact counts of the session's traces."""
    if params.session:
        done = _session_done_field(params)
        counts = _session_items(project, params).aggregate(
            total=Count("id"), reviewed=Count("id", filter=Q(**{f"{done}__isnull": False}))
        )
        return Progress(reviewed=counts["reviewed"], total=counts["total"])
    base = filter_traces(Trace.objects.filter(project=project), replace(params, reviewed=""))
    total = _bounded_count(base, _cache_key("trace-count", project, params))
    reviewed = _reviewed_count(project, base, params)
    return Progress(reviewed=reviewed, total=max(total, reviewed))


def reviewed_since(*, project: Project, since: datetime) -> int:
    """How many traces were reviewed in this sitting: a range on the review-log index."""
    return Trace.objects.filter(project=project, reviewed_at__gte=since).count()


# The trace list -----------------------------------------------------------------------------------------------


def encode_cursor(trace: Trace) -> str:
    return f"{trace.occurred_at.isoformat()}~{trace.pk}"


def decode_cursor(raw: str) -> tuple[datetime, int] | None:
    """A cursor from the URL; None when it does not parse (a hand-edited URL shows the first page)."""
    stamp, _, pk = raw.rpartition("~")
    try:
        moment = datetime.fromisoformat(stamp)
        number = int(pk)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment, number


@dataclass
class TracePage:
    traces: list[Trace]
    next_cursor: str | None
    previous_cursor: str | None


def trace_page(
    *, project: Project, params: QueueParams, after: str = "", before: str = "", size: int = PAGE_SIZE
) -> TracePage:
    """One page of the trace list in (occurred_at, id) order, continuing after or before a cursor."""
    order = params.order if params.order in LIST_ORDERS else "newest"
    fields, descending = _SORT[order]
    base = filter_traces(Trace.objects.filter(project=project), params)
    after_key = decode_cursor(after) if after else None
    before_key = decode_cursor(before) if before and not after_key else None
    if before_key is not None:
        # Walk backwards from the cursor, then restore display order.
        rows = list(
            base.filter(keyset_after(fields, before_key, descending=not descending))
            .order_by(*ordering_for("oldest" if descending else "newest"))
            .prefetch_related("labels__criterion")[: size + 1]
        )
        has_more_before = len(rows) > size
        rows = rows[:size][::-1]
        return TracePage(
            traces=rows,
            next_cursor=encode_cursor(rows[-1]) if rows else None,
            previous_cursor=encode_cursor(rows[0]) if rows and has_more_before else None,
        )
    queryset = base
    if after_key is not None:
        queryset = queryset.filter(keyset_after(fields, after_key, descending=descending))
    rows = list(queryset.order_by(*ordering_for(order)).prefetch_related("labels__criterion")[: size + 1])
    has_more = len(rows) > size
    rows = rows[:size]
    return TracePage(
        traces=rows,
        next_cursor=encode_cursor(rows[-1]) if rows and has_more else None,
        previous_cursor=encode_cursor(rows[0]) if rows and after_key is not None else None,
    )
