"""Reads for the failure taxonomy: how often each failure mode occurs, which modes occur together, and whether
new ones still appear.

Each selector runs a handful of aggregate queries whatever the number of modes, so they stay fast on a project
with a million traces: the links carry their trace, so the counts are one GROUP BY over the note ↔ mode index and
co-occurrence one self-join of it on the trace; the saturation curve is a short walk of the review log per mode
plus an index-only scan of the review log, folded together by a linear pass in Python. On large projects the
aggregates are cached briefly under a key that moves with every new review, label or coding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import accumulate
from typing import TypeVar

from django.core.cache import cache
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from django.db.models import Min, QuerySet
from django.utils import timezone

from annotation.count_filters import DEFAULT_PAIR_LIMIT, DEFAULT_WINDOW, CountFilters, parse_count_filters
from annotation.models import (
    Criterion,
    FailureMode,
    FailureModeChange,
    Label,
    LabelChange,
    NoteFailureMode,
    Project,
    Trace,
    Verdict,
)
from annotation.queue import EXACT_COUNT_LIMIT, QueueParams, filter_traces, keyset_after
from core.queue import task_send_now

_T = TypeVar("_T")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FailureModeCount:
    id: int
    name: str
    definition: str
    trace_count: int
    note_count: int
    share_of_reviewed_traces: float
    share_of_failing_traces: float
    retired: bool = False

    @property
    def percent_of_reviewed_traces(self) -> float:
        return 100 * self.share_of_reviewed_traces

    @property
    def percent_of_failing_traces(self) -> float:
        return 100 * self.share_of_failing_traces


# Not frozen: a frozen dataclass is several times slower to build, and the curve has one point per reviewed trace.
@dataclass(slots=True)
class SaturationPoint:
    reviewed: int
    distinct_failure_modes: int


def _table(model: type) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@contextmanager
def _analytic_cursor() -> Iterator[CursorWrapper]:
    """A cursor for the big aggregates. On PostgreSQL their estimated cost passes jit_above_cost, and compiling
    them took longer than running them (co-occurrence: 1.2 s with JIT, 0.5 s without, measured), so JIT is off
    for this transaction only."""
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL jit = off")
        yield cursor


# Caching, for large projects only (the queue's rule: above EXACT_COUNT_LIMIT reviewed traces). Each entry keeps
# the data state it was computed at. It is current while that state has not moved and it is younger than
# CACHE_SECONDS (removals do not move the state, so age bounds how long they can hide). Set to 0 to turn caching
# off (the bench measures both).
CACHE_SECONDS = 60
# The failure-modes page may show an entry that is no longer current, marked as such, while a worker recounts
# (stale-while-revalidate): at a million traces a recount takes ~0.6 s, too long for every page view after each
# coding. The REST routes never take stale numbers. A recount asked for and not done within RECOUNT_WAIT_SECONDS
# means no worker is keeping up: the page then counts for itself.
KEEP_SECONDS = 24 * 3600
RECOUNT_WAIT_SECONDS = 10
RECOUNT_TASK = "annotation.tasks.taxonomy_recount_task"


def _is_large(project: Project) -> bool:
    reviewed = Trace.objects.filter(project=project, reviewed_at__isnull=False).order_by()
    return reviewed[: EXACT_COUNT_LIMIT + 1].count() > EXACT_COUNT_LIMIT


def _data_state(project: Project) -> list[object]:
    """What moves when the numbers do, read from the tops of five indexes: the newest note-mode link, label
    change, codebook change and review, and the number of modes. Coding a note, labelling, reviewing or editing
    the codebook therefore shows at once; only removals (uncoding a note, deleting a trace) wait for the expiry."""
    sql = f"""
        SELECT (SELECT MAX(id) FROM {_table(NoteFailureMode)}),
               (SELECT MAX(id) FROM {_table(LabelChange)}),
               (SELECT MAX(id) FROM {_table(FailureModeChange)} WHERE project_id = %s),
               (SELECT MAX(reviewed_at) FROM {_table(Trace)} WHERE project_id = %s AND reviewed_at IS NOT NULL),
               (SELECT COUNT(*) FROM {_table(FailureMode)} WHERE project_id = %s)
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [project.pk, project.pk, project.pk])
        return [str(value) for value in cursor.fetchone()]


def _entry_key(project: Project, kind: str, parts: list[tuple[str, str]]) -> str:
    digest = hashlib.blake2b(json.dumps(parts).encode(), digest_size=12).hexdigest()
    return f"{project.cache_key(kind)}:{digest}"


def _recompute(project: Project, kind: str, parts: list[tuple[str, str]]) -> object:
    """The computation behind a cache entry, from the entry's kind and parts (what the worker's recount runs)."""
    if kind == "taxonomy-curve":
        return _saturation_counts(project)
    items = dict(parts)
    filters = parse_count_filters(items, now=timezone.now())
    if kind == "taxonomy-counts":
        return _count_rows(project, filters)
    if kind == "taxonomy-pairs":
        return _co_occurrence_rows(project, filters, int(items["limit"]))
    raise ValueError(f"unknown taxonomy cache kind {kind!r}")


def _recount_claim(project: Project, kind: str, parts: list[tuple[str, str]]) -> str:
    return f"{_entry_key(project, kind, parts)}:recount"


def taxonomy_recount(*, project: Project, kind: str, parts: list[tuple[str, str]]) -> None:
    """Recomputes one cache entry at the current data state (run by the worker after a page showed it stale)."""
    state = _data_state(project)
    value = _recompute(project, kind, parts)
    cache.set(_entry_key(project, kind, parts), (state, timezone.now(), value), KEEP_SECONDS)
    cache.delete(_recount_claim(project, kind, parts))


def _ask_for_recount(project: Project, kind: str, parts: list[tuple[str, str]]) -> bool:
    """Queues a recount of the entry unless one is already on its way. False when the caller should count in the
    request instead: the broker cannot take the task, or the one asked for has not been done in time."""
    claim = _recount_claim(project, kind, parts)
    now = time.time()
    asked_at = cache.get(claim)
    if asked_at is not None:
        return now - asked_at < RECOUNT_WAIT_SECONDS
    cache.set(claim, now, KEEP_SECONDS)
    if not task_send_now(RECOUNT_TASK, project.pk, kind, [list(part) for part in parts]):
        cache.delete(claim)  # this request counts for itself instead
        return False
    return True


def _cached(
    project: Project,
    kind: str,
    parts: list[tuple[str, str]],
    compute: Callable[[], _T],
    *,
    stale_ok: bool = False,
) -> tuple[_T, datetime | None]:
    """`compute()` and, when the value is an older one shown while a worker recounts (only with `stale_ok`), the
    time it was computed. Small projects always compute; large ones reuse an entry while it is current."""
    if not CACHE_SECONDS or not _is_large(project):
        return compute(), None
    key = _entry_key(project, kind, parts)
    state = _data_state(project)
    entry = cache.get(key)
    now = timezone.now()
    if entry is not None:
        entry_state, computed_at, value = entry
        age = (now - computed_at).total_seconds()
        if entry_state == state and age < CACHE_SECONDS:
            return value, None
        if stale_ok and _ask_for_recount(project, kind, parts):
            return value, computed_at
    value = compute()
    cache.set(key, (state, now, value), KEEP_SECONDS)
    cache.delete(_recount_claim(project, kind, parts))
    return value, None


def filtered_traces(*, project: Project, filters: CountFilters) -> QuerySet[Trace]:
    """The project's traces that pass the filters: the trace list's source and metadata matching (the same GIN
    lookup), plus the window on occurred_at (index trace_by_time)."""
    params = QueueParams(source=filters.source, meta_key=filters.meta_key, meta_value=filters.meta_value)
    traces = filter_traces(Trace.objects.filter(project=project), params)
    if filters.occurred_from is not None:
        traces = traces.filter(occurred_at__gte=filters.occurred_from)
    if filters.occurred_before is not None:
        traces = traces.filter(occurred_at__lt=filters.occurred_before)
    return traces


def _kept_ids_sql(project: Project, filters: CountFilters) -> tuple[str, list[object]]:
    """SELECT id of the traces that pass the filters. Ids only: the trace indexes (by source, by time) end in the
    id, so a source or time filter is an index-only scan instead of reading the million-row table (measured:
    1.7 s with reviewed_at in the select list, which forced a sequential scan)."""
    sql, params = filtered_traces(project=project, filters=filters).order_by().values("id").query.sql_with_params()
    return sql, list(params)


def _failing_sql(project: Project) -> tuple[str, list[object]]:
    return (
        f"""
        SELECT DISTINCT label.trace_id
        FROM {_table(Label)} label
        JOIN {_table(Criterion)} criterion ON criterion.id = label.criterion_id
        WHERE criterion.project_id = %s AND label.verdict = %s AND label.author_id = %s
        """,
        [project.pk, Verdict.FAIL, project.expert_id],
    )


def _counts_sql(project: Project, filters: CountFilters) -> tuple[str, list[object]]:
    # Collapsing the links to one row per (mode, trace) first makes "a trace counts once" a plain COUNT(*) and
    # avoids COUNT(DISTINCT …), which sorts per group; the links carry their trace, so this is an index-only scan
    # of note_mode_by_trace. The reviewed and failing sets are joined, not probed with IN (subquery): a hashed
    # subplan that outgrows work_mem degrades to a rescan per row, a hash join does not.
    # The reviewed set comes from the review log's index alone; filtered, the coded traces are also joined to the
    # ids of the traces that pass the filters.
    # Plain SQL (no FILTER, no DISTINCT ON) so the embedded SQLite default runs it too.
    reviewed_sql, reviewed_params = (
        Trace.objects.filter(project=project, reviewed_at__isnull=False).order_by().values("id").query.sql_with_params()
    )
    failing_sql, failing_params = _failing_sql(project)
    kept_join, kept_params = "", []
    if filters.is_filtered:
        kept_sql, kept_params = _kept_ids_sql(project, filters)
        kept_join = f"JOIN ({kept_sql}) kept ON kept.id = pairs.trace_id"
    sql = f"""
        SELECT pairs.mode_id, COUNT(*), SUM(pairs.notes), COUNT(reviewed.id), COUNT(failing.trace_id)
        FROM (
            SELECT link.failuremode_id AS mode_id, link.trace_id AS trace_id, COUNT(*) AS notes
            FROM {_table(NoteFailureMode)} link
            JOIN {_table(FailureMode)} fm ON fm.id = link.failuremode_id
            WHERE fm.project_id = %s
            GROUP BY link.failuremode_id, link.trace_id
        ) pairs
        {kept_join}
        LEFT JOIN ({reviewed_sql}) reviewed ON reviewed.id = pairs.trace_id
        LEFT JOIN ({failing_sql}) failing ON failing.trace_id = pairs.trace_id
        GROUP BY pairs.mode_id
    """
    return sql, [project.pk, *kept_params, *reviewed_params, *failing_params]


def _failing_labels(project: Project) -> QuerySet[Label]:
    # Only the expert's labels are ground truth; a former expert's labels no longer decide what fails.
    return Label.objects.filter(criterion__project=project, verdict=Verdict.FAIL, author_id=project.expert_id)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


@dataclass(frozen=True)
class CountTable:
    """The counts, with the totals their shares are fractions of (after the filters)."""

    counts: list[FailureModeCount]
    reviewed_total: int
    failing_total: int
    # Set when these are earlier numbers, shown while a worker recounts (see _cached): when they were computed.
    as_of: datetime | None = None


def failure_mode_table(*, project: Project, filters: CountFilters | None = None, stale_ok: bool = False) -> CountTable:
    """Every failure mode of the project with how often it was coded, most frequent first.

    A trace counts once per mode however many of its notes carry it. Retired modes are listed only while notes
    still carry them. Shares are fractions of the reviewed traces and of the failing traces (those with at least
    one "fail" label by the expert); 0.0 when there are none. With `filters`, only the traces that pass them
    count, and the shares are fractions of the reviewed and failing traces among those.
    """
    filters = filters or CountFilters()
    # The modes are read fresh (a rename or a new mode shows at once); the numbers may come from the cache.
    modes = list(FailureMode.objects.filter(project=project).values_list("id", "name", "definition", "retired_at"))
    (rows, reviewed_total, failing_total), as_of = _cached(
        project, "taxonomy-counts", filters.query_items(), lambda: _count_rows(project, filters), stale_ok=stale_ok
    )
    counts = []
    for mode_id, name, definition, retired_at in modes:
        traces, notes, reviewed_hits, failing_hits = rows.get(mode_id, (0, 0, 0, 0))
        if retired_at is not None and notes == 0:
            continue
        counts.append(
            FailureModeCount(
                id=mode_id,
                name=name,
                definition=definition,
                trace_count=traces,
                note_count=notes,
                share_of_reviewed_traces=_share(reviewed_hits, reviewed_total),
                share_of_failing_traces=_share(failing_hits, failing_total),
                retired=retired_at is not None,
            )
        )
    counts.sort(key=lambda c: (-c.trace_count, c.name.casefold(), c.name, c.id))
    return CountTable(counts=counts, reviewed_total=reviewed_total, failing_total=failing_total, as_of=as_of)


def _count_rows(project: Project, filters: CountFilters) -> tuple[dict[int, tuple[int, int, int, int]], int, int]:
    """Per mode id (traces, notes, reviewed traces, failing traces), and the reviewed and failing totals."""
    reviewed = Trace.objects.filter(project=project, reviewed_at__isnull=False)
    failing = _failing_labels(project)
    if filters.is_filtered:
        reviewed = filtered_traces(project=project, filters=filters).filter(reviewed_at__isnull=False)
        failing = failing.filter(trace__in=filtered_traces(project=project, filters=filters))
    reviewed_total = reviewed.order_by().count()
    failing_total = failing.values("trace_id").distinct().count()
    with _analytic_cursor() as cursor:
        cursor.execute(*_counts_sql(project, filters))
        # SUM comes back as a Decimal on PostgreSQL.
        rows = {row[0]: (row[1], int(row[2]), row[3], row[4]) for row in cursor}
    return rows, reviewed_total, failing_total


def failure_mode_counts(*, project: Project, filters: CountFilters | None = None) -> list[FailureModeCount]:
    """The rows of `failure_mode_table`: every mode with its counts, most frequent first."""
    return failure_mode_table(project=project, filters=filters).counts


# Co-occurrence -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModePair:
    """Two failure modes coded on the same traces. `share_of_rarer` is the fraction of the rarer mode's traces
    that also carry the other mode: 1.0 means the rarer mode never shows up alone (a merge candidate)."""

    first_id: int
    first_name: str
    second_id: int
    second_name: str
    trace_count: int
    share_of_rarer: float

    @property
    def percent_of_rarer(self) -> float:
        return 100 * self.share_of_rarer


def mode_co_occurrence(
    *, project: Project, filters: CountFilters | None = None, limit: int = DEFAULT_PAIR_LIMIT
) -> list[ModePair]:
    """The pairs of failure modes that appear on the same traces, most shared traces first, at most `limit`.

    One self-join of the (mode, trace) pairs on the trace, grouped by the pair of modes, all in SQL: the links
    carry their trace, so no note or trace row is read unless a filter needs it. A trace counts once per pair
    however many notes carry either mode. Ties are broken by the rarer-mode share, then by the modes' names.
    """
    return mode_co_occurrence_as_of(project=project, filters=filters, limit=limit)[0]


def mode_co_occurrence_as_of(
    *, project: Project, filters: CountFilters | None = None, limit: int = DEFAULT_PAIR_LIMIT, stale_ok: bool = False
) -> tuple[list[ModePair], datetime | None]:
    """`mode_co_occurrence`, and when the pairs are earlier ones shown while a worker recounts, their time."""
    filters = filters or CountFilters()
    names = dict(FailureMode.objects.filter(project=project).values_list("id", "name"))
    rows, as_of = _cached(
        project,
        "taxonomy-pairs",
        [*filters.query_items(), ("limit", str(limit))],
        lambda: _co_occurrence_rows(project, filters, limit),
        stale_ok=stale_ok,
    )
    # Names are read fresh: a rename shows at once even when the numbers come from the cache.
    pairs = [
        ModePair(first, names.get(first, ""), second, names.get(second, ""), traces, share)
        for first, second, traces, share in rows
    ]
    return pairs, as_of


def _co_occurrence_rows(project: Project, filters: CountFilters, limit: int) -> list[tuple[int, int, int, float]]:
    traces_join, traces_params = "", []
    if filters.is_filtered:
        traces_sql, traces_params = _kept_ids_sql(project, filters)
        traces_join = f"JOIN ({traces_sql}) kept ON kept.id = a.trace_id"
    # The self-join runs on the raw links with a hash join (measured: 2-3× faster than de-duplicating the
    # (mode, trace) pairs first, which PostgreSQL misestimates into a merge join with sorts on disk); a trace
    # with several notes carrying a mode is then counted once by COUNT(DISTINCT). The first mode of a pair is
    # the one with the smaller id, so each pair counts once. per_mode gives each mode's traces for the share.
    sql = f"""
        WITH together AS (
            SELECT a.failuremode_id AS first_id, b.failuremode_id AS second_id, COUNT(DISTINCT a.trace_id) AS traces
            FROM {_table(NoteFailureMode)} a
            JOIN {_table(FailureMode)} fm ON fm.id = a.failuremode_id
            JOIN {_table(NoteFailureMode)} b ON b.trace_id = a.trace_id AND b.failuremode_id > a.failuremode_id
            {traces_join}
            WHERE fm.project_id = %s
            GROUP BY a.failuremode_id, b.failuremode_id
        ),
        per_mode AS (
            SELECT a.failuremode_id AS mode_id, COUNT(DISTINCT a.trace_id) AS traces
            FROM {_table(NoteFailureMode)} a
            JOIN {_table(FailureMode)} fm ON fm.id = a.failuremode_id
            {traces_join}
            WHERE fm.project_id = %s
            GROUP BY a.failuremode_id
        )
        SELECT together.first_id, together.second_id, together.traces,
               CAST(together.traces AS FLOAT)
                   / CASE WHEN pa.traces < pb.traces THEN pa.traces ELSE pb.traces END AS share
        FROM together
        JOIN per_mode pa ON pa.mode_id = together.first_id
        JOIN per_mode pb ON pb.mode_id = together.second_id
        JOIN {_table(FailureMode)} fm_a ON fm_a.id = together.first_id
        JOIN {_table(FailureMode)} fm_b ON fm_b.id = together.second_id
        ORDER BY together.traces DESC, share DESC, fm_a.name, fm_b.name
        LIMIT %s
    """
    with _analytic_cursor() as cursor:
        cursor.execute(sql, [*traces_params, project.pk, *traces_params, project.pk, limit])
        return [tuple(row) for row in cursor]


# Saturation -----------------------------------------------------------------------------------------------------


def distinct_mode_counts(review_order: Iterable[Hashable], first_appearances: Iterable[Hashable]) -> list[int]:
    """The saturation curve as bare numbers (the n-th is the count after n reviewed traces), from plain values:
    `review_order` holds one key per reviewed trace in the order of review, `first_appearances` one key per
    failure mode — the key of the trace where it first appeared. A key that is not in `review_order` never counts.
    Plain ints: at 100,000 reviews, building one object per point cost more than the database reads."""
    new_at = Counter(first_appearances)
    return list(accumulate(new_at.get(key, 0) for key in review_order))


def saturation_points(review_order: Iterable[Hashable], first_appearances: Iterable[Hashable]) -> list[SaturationPoint]:
    """`distinct_mode_counts` as points."""
    counts = distinct_mode_counts(review_order, first_appearances)
    return [SaturationPoint(reviewed=n, distinct_failure_modes=m) for n, m in enumerate(counts, start=1)]


def no_new_mode_streak(points: Sequence[SaturationPoint]) -> int:
    """How many of the latest reviewed traces brought no new failure mode (all of them when none ever did)."""
    streak = 0
    for index in range(len(points) - 1, -1, -1):
        before = points[index - 1].distinct_failure_modes if index else 0
        if points[index].distinct_failure_modes > before:
            break
        streak += 1
    return streak


# How far down the review log the first-appearance walk looks before falling back to an aggregate. Most modes show
# up within the first few dozen reviews; the cap bounds the walk (modes × this many index probes) for the rest.
FIRST_APPEARANCE_WALK = 1_000


def _first_appearances_by_walk(project: Project) -> dict[int, tuple[datetime, int]]:
    """PostgreSQL: for each mode, walk the start of the review log (index trace_review_log) and stop at the first
    trace whose links carry the mode (index note_mode_by_trace): a few probes per mode instead of joining every
    link to its trace. Modes not met within FIRST_APPEARANCE_WALK reviews are left out."""
    sql = f"""
        SELECT fm.id, first.reviewed_at, first.id
        FROM {_table(FailureMode)} fm
        CROSS JOIN LATERAL (
            SELECT head.reviewed_at, head.id
            FROM (
                SELECT reviewed_at, id FROM {_table(Trace)}
                WHERE project_id = %s AND reviewed_at IS NOT NULL
                ORDER BY reviewed_at, id
                LIMIT %s
            ) head
            WHERE EXISTS (
                SELECT 1 FROM {_table(NoteFailureMode)} link
                WHERE link.failuremode_id = fm.id AND link.trace_id = head.id
            )
            ORDER BY head.reviewed_at, head.id
            LIMIT 1
        ) first
        WHERE fm.project_id = %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [project.pk, FIRST_APPEARANCE_WALK, project.pk])
        return {mode_id: (stamp, trace_id) for mode_id, stamp, trace_id in cursor}


def _first_appearances_by_aggregate(project: Project, mode_ids: set[int] | None) -> dict[int, tuple[datetime, int]]:
    """Any database: the earliest review stamp per mode (all modes when `mode_ids` is None), then the trace."""
    # The trace's project is implied by the mode's, but naming it lets PostgreSQL read (reviewed_at, id) from the
    # review log's partial index instead of the million-row trace table.
    links = NoteFailureMode.objects.filter(
        failure_mode__project=project, trace__project=project, trace__reviewed_at__isnull=False
    )
    if mode_ids is not None:
        links = links.filter(failure_mode_id__in=mode_ids)
    first_stamp: dict[int, datetime] = dict(
        links.values("failure_mode_id")
        .annotate(first=Min("trace__reviewed_at"))
        .values_list("failure_mode_id", "first")
        .order_by()
    )
    # A mode's first trace is the first one reviewed at its earliest stamp. Stamps are microseconds and ingestion
    # keeps them strictly increasing, so that is almost always the one trace with that stamp; for the rare stamp
    # shared by several traces, the links at those stamps say which of them carried the mode first.
    reviewed = Trace.objects.filter(project=project, reviewed_at__isnull=False)
    ids_at: dict[datetime, list[int]] = defaultdict(list)
    for stamp, pk in reviewed.filter(reviewed_at__in=set(first_stamp.values())).values_list("reviewed_at", "id"):
        ids_at[stamp].append(pk)
    first: dict[int, tuple[datetime, int]] = {}
    tied: dict[int, datetime] = {}
    for mode_id, stamp in first_stamp.items():
        ids = ids_at.get(stamp)
        if not ids:
            continue  # its trace was deleted between the two reads; the next read is consistent again
        if len(ids) == 1:
            first[mode_id] = (stamp, ids[0])
        else:
            tied[mode_id] = stamp
    if tied:
        rows = links.filter(failure_mode_id__in=tied, trace__reviewed_at__in=set(tied.values())).values_list(
            "failure_mode_id", "trace__reviewed_at", "trace_id"
        )
        for mode_id, stamp, trace_id in rows:
            if stamp == tied[mode_id]:
                first[mode_id] = min(first.get(mode_id, (stamp, trace_id)), (stamp, trace_id))
    return first


def _first_appearances(project: Project) -> dict[int, tuple[datetime, int]]:
    """Per failure mode, the review key (reviewed_at, trace id) of the first reviewed trace whose notes carry it.
    Modes never coded on a reviewed trace are left out."""
    if connection.vendor != "postgresql":
        return _first_appearances_by_aggregate(project, None)
    first = _first_appearances_by_walk(project)
    # Modes first met later in the review log (or never): aggregate over their links only.
    remaining = set(FailureMode.objects.filter(project=project).values_list("id", flat=True)) - set(first)
    if remaining:
        first.update(_first_appearances_by_aggregate(project, remaining))
    return first


def saturation_counts(*, project: Project) -> list[int]:
    """`saturation_curve` as bare numbers: the n-th is how many distinct failure modes the first n reviewed
    traces brought. For the REST route, which writes 100,000 points."""
    return _cached(project, "taxonomy-curve", [], lambda: _saturation_counts(project))[0]


def _saturation_counts(project: Project) -> list[int]:
    first = _first_appearances(project)
    # Ids only, from an index-only scan of the review log, through a plain cursor: turning 100,000 timestamps into
    # datetimes, or rows into model values, would cost more than everything else here together.
    sql, params = (
        Trace.objects.filter(project=project, reviewed_at__isnull=False)
        .order_by("reviewed_at", "id")
        .values_list("id")
        .query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        order = [row[0] for row in cursor.fetchall()]
    return distinct_mode_counts(order, (pk for _, pk in first.values()))


def saturation_curve(*, project: Project) -> list[SaturationPoint]:
    """After the n-th reviewed trace (by reviewed_at, then id), how many distinct failure modes have appeared on
    the notes of the first n reviewed traces. Any note counts, not only the expert's: the mode was seen."""
    counts = saturation_counts(project=project)
    return [SaturationPoint(reviewed=n, distinct_failure_modes=m) for n, m in enumerate(counts, start=1)]


def saturation_steps_as_of(
    *, project: Project, stale_ok: bool = False
) -> tuple[list[SaturationPoint], datetime | None]:
    """The saturation curve's corners only (its first point, each point where a new mode appeared, its last), from
    which a step line redraws it exactly; and when it is an earlier curve shown while a worker recounts, its time.
    A chart needs no more, and at 100,000 reviews building every point cost more than the rest of the page."""
    counts, as_of = _cached(project, "taxonomy-curve", [], lambda: _saturation_counts(project), stale_ok=stale_ok)
    steps: list[SaturationPoint] = []
    previous = None
    for reviewed, modes in enumerate(counts, start=1):
        if modes != previous:
            steps.append(SaturationPoint(reviewed=reviewed, distinct_failure_modes=modes))
            previous = modes
    if counts and steps[-1].reviewed != len(counts):
        steps.append(SaturationPoint(reviewed=len(counts), distinct_failure_modes=counts[-1]))
    return steps, as_of


@dataclass(frozen=True)
class SaturationSummary:
    """The saturation statement: did the last `window` reviewed traces bring any new failure mode?"""

    reviewed: int
    distinct_failure_modes: int
    window: int
    # Modes whose first appearance is among the last `window` reviewed traces (all of them when fewer were reviewed).
    new_in_window: int
    # How many of the latest reviewed traces brought no new mode (all of them when none ever did).
    no_new_mode_streak: int

    @property
    def window_complete(self) -> bool:
        return self.reviewed >= self.window

    @property
    def saturated(self) -> bool:
        """No new mode in a full window. Too few reviews say nothing yet, whatever they show."""
        return self.window_complete and self.new_in_window == 0


def saturation_summary(*, project: Project, window: int = DEFAULT_WINDOW) -> SaturationSummary:
    """The saturation statement without the curve: a few index reads on the review log plus one aggregate per
    mode, instead of one point per reviewed trace."""
    first = _first_appearances(project)
    reviewed = Trace.objects.filter(project=project, reviewed_at__isnull=False).order_by()
    reviewed_count = reviewed.count()
    if first:
        latest = max(first.values())
        streak = reviewed.filter(keyset_after(("reviewed_at", "id"), latest, descending=False)).count()
    else:
        streak = reviewed_count
    # The key of the window's oldest trace: `window` steps down the review log's index.
    start = reviewed.order_by("-reviewed_at", "-id").values_list("reviewed_at", "id")[window - 1 : window].first()
    new_in_window = sum(1 for key in first.values() if start is None or key >= start)
    return SaturationSummary(
        reviewed=reviewed_count,
        distinct_failure_modes=len(first),
        window=window,
        new_in_window=new_in_window,
        no_new_mode_streak=streak,
    )
