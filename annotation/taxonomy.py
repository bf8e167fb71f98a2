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

from annotation.models import Criterion, FailureMode, Label, NoteFailureMode, Project, Trace, Verdict


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


def _counts_sql() -> str:
    # Collapsing the links to one row per (mode, trace) first makes "a trace counts once" a plain COUNT(*) and
    # avoids COUNT(DISTINCT …), which sorts per group. The reviewed and failing sets are joined, not probed with
    # IN (subquery): a hashed subplan that outgrows work_mem degrades to a rescan per row, a hash join does not.
    # Plain SQL (no FILTER, no DISTINCT ON) so the embedded SQLite default runs it too.
    return f"""
        SELECT pairs.mode_id, COUNT(*), SUM(pairs.notes), COUNT(reviewed.id), COUNT(failing.trace_id)
        FROM (
            SELECT link.failuremode_id AS mode_id, link.trace_id AS trace_id, COUNT(*) AS notes
            FROM {_table(NoteFailureMode)} link
            JOIN {_table(FailureMode)} fm ON fm.id = link.failuremode_id
            WHERE fm.project_id = %s
            GROUP BY link.failuremode_id, link.trace_id
        ) pairs
        LEFT JOIN (
            SELECT id FROM {_table(Trace)} WHERE project_id = %s AND reviewed_at IS NOT NULL
        ) reviewed ON reviewed.id = pairs.trace_id
        LEFT JOIN (
            SELECT DISTINCT label.trace_id
            FROM {_table(Label)} label
            JOIN {_table(Criterion)} criterion ON criterion.id = label.criterion_id
            WHERE criterion.project_id = %s AND label.verdict = %s AND label.author_id = %s
        ) failing ON failing.trace_id = pairs.trace_id
        GROUP BY pairs.mode_id
    """


def _failing_labels(project: Project) -> QuerySet[Label]:
    # Only the expert's labels are ground truth; a former expert's labels no longer decide what fails.
    return Label.objects.filter(criterion__project=project, verdict=Verdict.FAIL, author_id=project.expert_id)


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def failure_mode_counts(*, project: Project) -> list[FailureModeCount]:
    """Every failure mode of the project with how often it was coded, most frequent first.

    A trace counts once per mode however many of its notes carry it. Retired modes are listed only while notes
    still carry them. Shares are fractions of the reviewed traces and of the failing traces (those with at least
    one "fail" label by the expert); 0.0 when there are none.
    """
    modes = list(FailureMode.objects.filter(project=project).values_list("id", "name", "definition", "retired_at"))
    if not modes:
        return []
    with connection.cursor() as cursor:
        cursor.execute(_counts_sql(), [project.pk, project.pk, project.pk, Verdict.FAIL, project.expert_id])
        # SUM comes back as a Decimal on PostgreSQL.
        rows = {row[0]: (row[1], int(row[2]), row[3], row[4]) for row in cursor}
    reviewed_total = Trace.objects.filter(project=project, reviewed_at__isnull=False).count()
    failing_total = _failing_labels(project).values("trace_id").distinct().count()

    counts = []
    for mode_id, name, definition, retired_at in modes:
        traces, notes, reviewed, failing = rows.get(mode_id, (0, 0, 0, 0))
        if retired_at is not None and notes == 0:
            continue
        counts.append(
            FailureModeCount(
                id=mode_id,
                name=name,
                definition=definition,
                trace_count=traces,
                note_count=notes,
                share_of_reviewed_traces=_share(reviewed, reviewed_total),
                share_of_failing_traces=_share(failing, failing_total),
                retired=retired_at is not None,
            )
        )
    counts.sort(key=lambda c: (-c.trace_count, c.name.casefold(), c.name, c.id))
    return counts


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


def saturation_curve(*, project: Project) -> list[SaturationPoint]:
    """After the n-th reviewed trace (by reviewed_at, then id), how many distinct failure modes have appeared on
    the notes of the first n reviewed traces. Any note counts, not only the expert's: the mode was seen."""
    links = NoteFailureMode.objects.filter(failure_mode__project=project, trace__reviewed_at__isnull=False)
    first_stamp: dict[int, datetime] = dict(
        links.values("failure_mode_id")
        .annotate(first=Min("trace__reviewed_at"))
        .values_list("failure_mode_id", "first")
        .order_by()
    )
    reviewed = Trace.objects.filter(project=project, reviewed_at__isnull=False)
    # Ids only, from an index-only scan of the review log: turning 100,000 timestamps into datetimes would cost
    # more than everything else here together.
    order = list(reviewed.order_by("reviewed_at", "id").values_list("id", flat=True))

    # A mode's first trace is the first one reviewed at its earliest stamp. Stamps are microseconds and ingestion
    # keeps them strictly increasing, so that is almost always the one trace with that stamp; for the rare stamp
    # shared by several traces, the links at those stamps say which of them carried the mode first.
    ids_at: dict[datetime, list[int]] = defaultdict(list)
    for stamp, pk in reviewed.filter(reviewed_at__in=set(first_stamp.values())).values_list("reviewed_at", "id"):
        ids_at[stamp].append(pk)
    first_trace: dict[int, int] = {}
    tied: dict[int, datetime] = {}
    for mode_id, stamp in first_stamp.items():
        ids = ids_at.get(stamp)
        if not ids:
            continue  # its trace was deleted between the two reads; the next read is consistent again
        if len(ids) == 1:
            first_trace[mode_id] = ids[0]
        else:
            tied[mode_id] = stamp
    if tied:
        rows = links.filter(failure_mode_id__in=tied, trace__reviewed_at__in=set(tied.values())).values_list(
            "failure_mode_id", "trace__reviewed_at", "trace_id"
        )
        for mode_id, stamp, trace_id in rows:
            if stamp == tied[mode_id]:
                first_trace[mode_id] = min(first_trace.get(mode_id, trace_id), trace_id)
    return saturation_points(order, first_trace.values())
