"""Reads for the failure taxonomy: how often each failure mode occurs, and whether new ones still appear.

Both selectors run a handful of aggregate queries whatever the number of modes, so they stay fast on a project
with a million traces: the counts are one GROUP BY over the note ↔ mode links, the saturation curve one MIN per
mode plus an index-only scan of the review log, folded together by a linear pass in Python.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.db.models import Min, QuerySet

from annotation.count_filters import DEFAULT_PAIR_LIMIT, DEFAULT_WINDOW, CountFilters
from annotation.models import Criterion, FailureMode, Label, NoteFailureMode, Project, Trace, Verdict
from annotation.queue import QueueParams, filter_traces, keyset_after


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


def _traces_sql(project: Project, filters: CountFilters, *, reviewed_only: bool) -> tuple[str, list[object]]:
    """SELECT id, reviewed_at of the filtered traces, to join on."""
    traces = filtered_traces(project=project, filters=filters)
    if reviewed_only:
        traces = traces.filter(reviewed_at__isnull=False)
    sql, params = traces.order_by().values("id", "reviewed_at").query.sql_with_params()
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
    # Unfiltered, the reviewed set comes from the review log's index alone and every coded trace counts (LEFT
    # JOIN); filtered, the coded traces are joined to the traces that pass the filters (INNER JOIN).
    # Plain SQL (no FILTER, no DISTINCT ON) so the embedded SQLite default runs it too.
    traces_sql, traces_params = _traces_sql(project, filters, reviewed_only=not filters.is_filtered)
    failing_sql, failing_params = _failing_sql(project)
    join = "JOIN" if filters.is_filtered else "LEFT JOIN"
    sql = f"""
        SELECT pairs.mode_id, COUNT(*), SUM(pairs.notes), COUNT(traces.reviewed_at), COUNT(failing.trace_id)
        FROM (
            SELECT link.failuremode_id AS mode_id, link.trace_id AS trace_id, COUNT(*) AS notes
            FROM {_table(NoteFailureMode)} link
            JOIN {_table(FailureMode)} fm ON fm.id = link.failuremode_id
            WHERE fm.project_id = %s
            GROUP BY link.failuremode_id, link.trace_id
        ) pairs
        {join} ({traces_sql}) traces ON traces.id = pairs.trace_id
        LEFT JOIN ({failing_sql}) failing ON failing.trace_id = pairs.trace_id
        GROUP BY pairs.mode_id
    """
    return sql, [project.pk, *traces_params, *failing_params]


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


def failure_mode_table(*, project: Project, filters: CountFilters | None = None) -> CountTable:
    """Every failure mode of the project with how often it was coded, most frequent first.

    A trace counts once per mode however many of its notes carry it. Retired modes are listed only while notes
    still carry them. Shares are fractions of the reviewed traces and of the failing traces (those with at least
    one "fail" label by the expert); 0.0 when there are none. With `filters`, only the traces that pass them
    count, and the shares are fractions of the reviewed and failing traces among those.
    """
    filters = filters or CountFilters()
    modes = list(FailureMode.objects.filter(project=project).values_list("id", "name", "definition", "retired_at"))
    reviewed = Trace.objects.filter(project=project, reviewed_at__isnull=False)
    failing = _failing_labels(project)
    if filters.is_filtered:
        reviewed = filtered_traces(project=project, filters=filters).filter(reviewed_at__isnull=False)
        failing = failing.filter(trace__in=filtered_traces(project=project, filters=filters))
    reviewed_total = reviewed.order_by().count()
    failing_total = failing.values("trace_id").distinct().count()
    if not modes:
        return CountTable(counts=[], reviewed_total=reviewed_total, failing_total=failing_total)
    with connection.cursor() as cursor:
        cursor.execute(*_counts_sql(project, filters))
        # SUM comes back as a Decimal on PostgreSQL.
        rows = {row[0]: (row[1], int(row[2]), row[3], row[4]) for row in cursor}

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
    return CountTable(counts=counts, reviewed_total=reviewed_total, failing_total=failing_total)


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
    filters = filters or CountFilters()
    traces_join, traces_params = "", []
    if filters.is_filtered:
        traces_sql, traces_params = _traces_sql(project, filters, reviewed_only=False)
        traces_join = f"JOIN ({traces_sql}) traces ON traces.id = link.trace_id"
    # The (mode, trace) pairs are read twice, so PostgreSQL materialises them once; per_mode gives each mode's
    # trace count for the share. The first mode of a pair is the one with the smaller id, so a pair counts once.
    sql = f"""
        WITH pairs AS (
            SELECT DISTINCT link.failuremode_id AS mode_id, link.trace_id AS trace_id
            FROM {_table(NoteFailureMode)} link
            JOIN {_table(FailureMode)} fm ON fm.id = link.failuremode_id
            {traces_join}
            WHERE fm.project_id = %s
        ),
        per_mode AS (SELECT mode_id, COUNT(*) AS traces FROM pairs GROUP BY mode_id),
        together AS (
            SELECT a.mode_id AS first_id, b.mode_id AS second_id, COUNT(*) AS traces
            FROM pairs a JOIN pairs b ON b.trace_id = a.trace_id AND b.mode_id > a.mode_id
            GROUP BY a.mode_id, b.mode_id
        )
        SELECT together.first_id, fm_a.name, together.second_id, fm_b.name, together.traces,
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
    with connection.cursor() as cursor:
        cursor.execute(sql, [*traces_params, project.pk, limit])
        return [ModePair(*row) for row in cursor]


# Saturation -----------------------------------------------------------------------------------------------------


def saturation_points(review_order: Iterable[Hashable], first_appearances: Iterable[Hashable]) -> list[SaturationPoint]:
    """The saturation curve from plain values (no database): `review_order` holds one key per reviewed trace in
    the order of review, `first_appearances` one key per failure mode — the key of the trace where it first
    appeared. A key that is not in `review_order` never counts."""
    new_at = Counter(first_appearances)
    points = []
    seen = 0
    for position, key in enumerate(review_order, start=1):
        seen += new_at.get(key, 0)
        points.append(SaturationPoint(reviewed=position, distinct_failure_modes=seen))
    return points


def no_new_mode_streak(points: Sequence[SaturationPoint]) -> int:
    """How many of the latest reviewed traces brought no new failure mode (all of them when none ever did)."""
    streak = 0
    for index in range(len(points) - 1, -1, -1):
        before = points[index - 1].distinct_failure_modes if index else 0
        if points[index].distinct_failure_modes > before:
            break
        streak += 1
    return streak


def _first_appearances(project: Project) -> dict[int, tuple[datetime, int]]:
    """Per failure mode, the review key (reviewed_at, trace id) of the first reviewed trace whose notes carry it.
    Modes never coded on a reviewed trace are left out."""
    # The trace's project is implied by the mode's, but naming it lets PostgreSQL read (reviewed_at, id) from the
    # review log's partial index instead of the million-row trace table.
    links = NoteFailureMode.objects.filter(
        failure_mode__project=project, trace__project=project, trace__reviewed_at__isnull=False
    )
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


def saturation_curve(*, project: Project) -> list[SaturationPoint]:
    """After the n-th reviewed trace (by reviewed_at, then id), how many distinct failure modes have appeared on
    the notes of the first n reviewed traces. Any note counts, not only the expert's: the mode was seen."""
    first = _first_appearances(project)
    # Ids only, from an index-only scan of the review log: turning 100,000 timestamps into datetimes would cost
    # more than everything else here together.
    reviewed = Trace.objects.filter(project=project, reviewed_at__isnull=False)
    order = list(reviewed.order_by("reviewed_at", "id").values_list("id", flat=True))
    return saturation_points(order, (pk for _, pk in first.values()))


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
