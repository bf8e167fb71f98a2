"""Reads for the coding board (axial coding): its query parameters, a page of notes newest first, the traces per
failure mode for its Pareto chart, and the modes a note can be coded to. Writes go through annotation.codebook."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

from django.db import connection, transaction
from django.db.models import Exists, Max, Min, OuterRef, QuerySet
from django.http import QueryDict

from annotation.models import FailureMode, Note, NoteFailureMode, Project

PAGE_SIZE = 50
# The filter is a substring, not a document: a longer one is a pasted note, not a search.
FILTER_MAX_CHARS = 200
# A codebook is tens of modes; the cap only bounds a pathological project.
MODE_CHOICES_LIMIT = 1000
# The most note ids one page request walks: bounds the work of a text filter that matches little (or of the
# uncoded-only list when nearly everything is coded) to ~50 ms at any table size.
SCAN_WINDOW = 50_000
# "1,000+ uncoded notes" is as useful as the exact number and costs a bounded scan instead of a full one.
COUNT_LIMIT = 1000


def parse_id(raw: str) -> int | None:
    """A primary key from a form or query string: ASCII digits that fit a bigint (str.isdigit also accepts "²")."""
    raw = raw.strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def mode_choices(*, project: Project, limit: int = MODE_CHOICES_LIMIT) -> list[FailureMode]:
    """The modes a note can be coded to: the project's non-retired modes, by name."""
    return list(
        FailureMode.objects.filter(project=project, retired_at__isnull=True)
        .order_by("name", "id")
        .only("id", "name")[:limit]
    )


@dataclass(frozen=True)
class ModeTraces:
    id: int
    name: str
    trace_count: int


def pareto_counts(*, project: Project) -> list[ModeTraces]:
    """Traces per failure mode, exact, for the board's Pareto chart.

    Only what the chart needs: unlike `taxonomy.failure_mode_counts` it does not join the reviewed and failing
    traces, so it is an index-only scan of the link table's (mode, trace) index. Collapsing to one row per
    (mode, trace) first makes "a trace counts once" a plain COUNT(*) instead of a per-group sort.
    """
    modes = dict(FailureMode.objects.filter(project=project).values_list("id", "name"))
    if not modes:
        return []
    table = connection.ops.quote_name(NoteFailureMode._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            SELECT pairs.mode_id, COUNT(*) FROM (
                SELECT failuremode_id AS mode_id, trace_id FROM {table}
                WHERE failuremode_id IN ({", ".join(["%s"] * len(modes))})
                GROUP BY failuremode_id, trace_id
            ) pairs GROUP BY pairs.mode_id
            """,
            list(modes),
        )
        return [ModeTraces(id=mode_id, name=modes[mode_id], trace_count=count) for mode_id, count in cursor]


@dataclass(frozen=True)
class BoardParams:
    """The board's filters and position, from the query string of every link and form on it."""

    text: str = ""
    show_coded: bool = False
    after: int | None = None  # keyset cursor: notes with a smaller id (older), newest first
    before: int | None = None  # the way back: notes with a larger id
    error: str = ""

    @classmethod
    def from_query(cls, query: QueryDict) -> BoardParams:
        # NUL cannot be in a PostgreSQL string, and no note holds one.
        text = " ".join(query.get("q", "").replace("\x00", "").split())
        error = ""
        if len(text) > FILTER_MAX_CHARS:
            error = f"The text filter is limited to {FILTER_MAX_CHARS} characters; it was cut there."
            text = text[:FILTER_MAX_CHARS]
        after = parse_id(query.get("after", ""))
        return cls(
            text=text,
            show_coded=query.get("coded") == "1",
            after=after,
            before=parse_id(query.get("before", "")) if after is None else None,
            error=error,
        )

    def querystring(self, **cursor: int) -> str:
        """The filters (and an optional cursor) as `?…`; "" when there is nothing to carry."""
        items: list[tuple[str, str]] = []
        if self.text:
            items.append(("q", self.text))
        if self.show_coded:
            items.append(("coded", "1"))
        items.extend((key, str(value)) for key, value in cursor.items())
        return "?" + urlencode(items) if items else ""

    @property
    def position(self) -> str:
        """The filters and the current page, so a form posted from this page comes back to it."""
        if self.after is not None:
            return self.querystring(after=self.after)
        if self.before is not None:
            return self.querystring(before=self.before)
        return self.querystring()


@dataclass
class BoardPage:
    notes: list[Note]
    next_cursor: int | None
    previous_cursor: int | None
    count: int | None  # None with a text filter (not counted)
    count_is_lower_bound: bool
    # The scan window ran out before the page filled: more matches may lie further on (the pager continues).
    searched_part: bool = False


def board_queryset(project: Project, params: BoardParams) -> QuerySet[Note]:
    notes = Note.objects.filter(trace__project=project)
    if not params.show_coded:
        # NOT EXISTS probes the link table's (note, mode) unique index once per note.
        notes = notes.filter(~Exists(NoteFailureMode.objects.filter(note_id=OuterRef("pk"))))
    if params.text:
        notes = notes.filter(text__icontains=params.text)
    return notes


@contextmanager
def walk_the_index() -> Iterator[None]:
    """Make PostgreSQL answer a page by walking the note index, not by sorting every match.

    The planner cannot know how many notes a substring matches; guessing few, it reads every note, joins each
    match to its trace and sorts them all, even when the first few hundred notes would fill the page (measured at
    200,000 notes: 760 ms instead of 2 ms for a word in one note in ten). Walking the primary key backwards and
    stopping after a page is never much worse: when nothing matches, both plans read every note once. The
    settings are transaction-local and restored on the way out.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_seqscan'), current_setting('enable_sort')")
        seqscan, sort = cursor.fetchone()
        set_plan = "SELECT set_config('enable_seqscan', %s, true), set_config('enable_sort', %s, true)"
        cursor.execute(set_plan, ["off", "off"])
        try:
            yield
        finally:
            cursor.execute(set_plan, [seqscan, sort])


def board_page(*, project: Project, params: BoardParams, size: int = PAGE_SIZE) -> BoardPage:
    """One page of notes, newest first (by id, which follows creation), continuing after or before a cursor.

    Keyset on the primary key: each page walks the note index from the cursor and stops after `size` matches, so
    page 4,000 costs what page 1 does. A filter that matches little would walk far, so one request looks at no
    more than SCAN_WINDOW note ids; when they run out before the page fills, the page says so and its pager
    continues from where the scan stopped. The total is counted up to COUNT_LIMIT, and only without a text
    filter: with one, counting would read every note.
    """
    base = board_queryset(project, params)
    ends = Note.objects.aggregate(low=Min("pk"), high=Max("pk"))  # the ends of the primary key: two index probes
    low, high = ends["low"] or 0, ends["high"] or 0
    newer = params.before is not None
    if newer:
        # Towards newer notes: ids in (before, before + window], ascending.
        start = params.before
        bound = start + SCAN_WINDOW
        keyset = base.filter(pk__gt=start, pk__lte=bound).order_by("pk")
        more_in_direction = bound < high
    else:
        # Towards older notes: ids in [after - window, after), descending; the first page starts past the newest.
        start = params.after if params.after is not None else high + 1
        bound = start - SCAN_WINDOW
        keyset = base.filter(pk__lt=start, pk__gte=bound).order_by("-pk")
        more_in_direction = bound > low
    with walk_the_index():
        ids = list(keyset.values_list("pk", flat=True)[: size + 1])
    full = len(ids) > size
    ids = ids[:size]
    # Where the next request in this direction starts: after the last row shown, or where the scan stopped.
    if full:
        onward: int | None = ids[-1]
    elif more_in_direction:
        onward = bound
    else:
        onward = None
    # The rows themselves by key. The trace's title needs its text fields, not its context or metadata.
    by_id = Note.objects.select_related("trace", "author").defer("trace__context", "trace__metadata").in_bulk(ids)
    rows = [by_id[pk] for pk in sorted(ids, reverse=True) if pk in by_id]
    if newer:
        previous_cursor = onward
        next_cursor = rows[-1].pk if rows else start + 1
    else:
        next_cursor = onward
        back = rows[0].pk if rows else start - 1
        previous_cursor = back if params.after is not None else None
    if params.show_coded and rows:
        modes: dict[int, list[FailureMode]] = {}
        links = NoteFailureMode.objects.filter(note_id__in=ids).select_related("failure_mode")
        for link in links.order_by("failure_mode__name"):
            modes.setdefault(link.note_id, []).append(link.failure_mode)
        for note in rows:
            note.coded_modes = modes.get(note.pk, [])
    count = None if params.text else base.order_by()[: COUNT_LIMIT + 1].count()
    return BoardPage(
        notes=rows,
        next_cursor=next_cursor,
        previous_cursor=previous_cursor,
        count=None if count is None else min(count, COUNT_LIMIT),
        count_is_lower_bound=count is not None and count > COUNT_LIMIT,
        searched_part=not full and more_in_direction,
    )
