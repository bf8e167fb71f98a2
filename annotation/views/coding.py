"""Coding notes to failure modes (axial coding): the coding board of uncoded notes, and the mode chips and picker
on the review page.

Every view starts with `get_project_for_user` (404 for outsiders, before anything else is looked up); writes need
`Permission.EDIT_CODEBOOK` (403 for viewers) and go through `annotation.codebook`, the only writer of note ↔ mode links.
Bad input (no notes selected, an unknown mode, a note of another project) is answered with a message naming it,
and nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import Exists, Max, Min, OuterRef, QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.charts import pareto_chart
from annotation.codebook import failure_mode_create, notes_assign, notes_unassign
from annotation.models import FailureMode, Note, NoteFailureMode, Project
from annotation.services import DomainError

BOARD_TEMPLATE = "annotation/coding_board.html"
MODES_TEMPLATE = "annotation/_note_modes.html"
PAGE_SIZE = 50
# One bulk action codes at most a few pages of notes; a bigger request is a mistake or an abuse.
MAX_SELECTED = 500
# The filter is a substring, not a document: a longer one is a pasted note, not a search.
FILTER_MAX_CHARS = 200
# A codebook is tens of modes; the cap only bounds a pathological project.
MODE_CHOICES_LIMIT = 1000
# The most note ids one page request walks: bounds the work of a text filter that matches little (or of the
# uncoded-only list when nearly everything is coded) to ~50 ms at any table size.
SCAN_WINDOW = 50_000
# "1,000+ uncoded notes" is as useful as the exact number and costs a bounded scan instead of a full one.
COUNT_LIMIT = 1000


def _parse_id(raw: str) -> int | None:
    raw = raw.strip()
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 19 else None


def mode_choices(project: Project) -> list[FailureMode]:
    """The modes a note can be coded to: the project's non-retired modes, by name."""
    return list(
        FailureMode.objects.filter(project=project, retired_at__isnull=True)
        .order_by("name", "id")
        .only("id", "name")[:MODE_CHOICES_LIMIT]
    )


@dataclass(frozen=True)
class ModeTraces:
    id: int
    name: str
    trace_count: int


def pareto_counts(project: Project) -> list[ModeTraces]:
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


# The coding board -----------------------------------------------------------------------------------------------


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
        after = _parse_id(query.get("after", ""))
        return cls(
            text=text,
            show_coded=query.get("coded") == "1",
            after=after,
            before=_parse_id(query.get("before", "")) if after is None else None,
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


def _board_queryset(project: Project, params: BoardParams) -> QuerySet[Note]:
    notes = Note.objects.filter(trace__project=project)
    if not params.show_coded:
        # NOT EXISTS probes the link table's (note, mode) unique index once per note.
        notes = notes.filter(~Exists(NoteFailureMode.objects.filter(note_id=OuterRef("pk"))))
    if params.text:
        notes = notes.filter(text__icontains=params.text)
    return notes


@contextmanager
def _walk_the_index() -> Iterator[None]:
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
    base = _board_queryset(project, params)
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
    with _walk_the_index():
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


def _board_context(access: ProjectAccess, params: BoardParams, **extra: Any) -> dict[str, Any]:
    project = access.project
    page = board_page(project=project, params=params)
    board_url = reverse("coding_board", args=[project.slug])
    return {
        "project": project,
        "access": access,
        "params": params,
        "page": page,
        "board_url": board_url,
        "next_url": board_url + params.querystring(after=page.next_cursor) if page.next_cursor else "",
        "previous_url": board_url + params.querystring(before=page.previous_cursor) if page.previous_cursor else "",
        "modes": mode_choices(project) if access.can(Permission.EDIT_CODEBOOK) else [],
        "pareto": pareto_chart(pareto_counts(project), trace_list_url=reverse("trace_list", args=[project.slug])),
        "selected": set(),
        **extra,
    }


@login_required
@require_GET
def coding_board(request: HttpRequest, slug: str) -> HttpResponse:
    """The notes nobody has coded yet, newest first, to code in bulk; with `coded=1` the coded ones too."""
    access = get_project_for_user(request, slug)
    params = BoardParams.from_query(request.GET)
    template = BOARD_TEMPLATE + "#board" if request.htmx else BOARD_TEMPLATE
    return render(request, template, _board_context(access, params))


def _selected_notes(project: Project, raw_ids: list[str]) -> list[Note]:
    if not raw_ids:
        raise DomainError("Select at least one note to code.")
    if len(raw_ids) > MAX_SELECTED:
        raise DomainError(f"Select at most {MAX_SELECTED} notes at a time ({len(raw_ids)} were selected).")
    ids = []
    for raw in raw_ids:
        note_id = _parse_id(raw)
        if note_id is None:
            raise DomainError(f"“{raw[:40]}” is not a note id.")
        ids.append(note_id)
    notes = list(Note.objects.filter(pk__in=ids, trace__project=project).only("id", "trace_id"))
    missing = sorted(set(ids) - {note.pk for note in notes})
    if missing:
        listed = ", ".join(str(note_id) for note_id in missing[:5]) + ("…" if len(missing) > 5 else "")
        raise DomainError(f"Note{'s' if len(missing) > 1 else ''} {listed} not found in this project.")
    return notes


def _new_mode_name(raw: str) -> str:
    # PostgreSQL refuses NUL in text; say so rather than fail on the write.
    if "\x00" in raw:
        raise DomainError("A failure mode name cannot contain NUL characters.")
    return raw


def _chosen_mode(project: Project, raw_mode: str, new_name: str, actor: AbstractBaseUser) -> tuple[FailureMode, bool]:
    """The existing mode picked, or a new one named; exactly one of the two. Call inside a transaction."""
    raw_mode, new_name = raw_mode.strip(), new_name.strip()
    if raw_mode and new_name:
        raise DomainError("Pick an existing failure mode or name a new one, not both.")
    if new_name:
        return failure_mode_create(project=project, name=_new_mode_name(new_name), actor=actor), True
    if not raw_mode:
        raise DomainError("Pick a failure mode, or name a new one, to code the selected notes to.")
    mode_id = _parse_id(raw_mode)
    mode = FailureMode.objects.filter(project=project, pk=mode_id).first() if mode_id is not None else None
    if mode is None:
        raise DomainError(f"Failure mode “{raw_mode[:40]}” does not exist in this project.")
    return mode, False


@login_required
@require_POST
def coding_assign(request: HttpRequest, slug: str) -> HttpResponse:
    """The bulk action: code the selected notes to an existing mode, or to a new one created on the spot."""
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    project = access.project
    params = BoardParams.from_query(request.GET)
    raw_ids = request.POST.getlist("note")
    try:
        # One transaction: a new mode is not left behind when coding the notes to it fails.
        with transaction.atomic():
            notes = _selected_notes(project, raw_ids)
            mode, created = _chosen_mode(
                project, request.POST.get("mode", ""), request.POST.get("new_mode", ""), request.user
            )
            added = notes_assign(notes=notes, failure_mode=mode)
    except DomainError as exc:
        selected = {note_id for raw in raw_ids if (note_id := _parse_id(raw)) is not None}
        context = _board_context(
            access,
            params,
            error=str(exc),
            selected=selected,
            draft_mode=request.POST.get("mode", ""),
            draft_new_mode=request.POST.get("new_mode", ""),
        )
        if request.htmx:
            # htmx swaps only 2xx answers; the message is in the swapped region.
            return render(request, BOARD_TEMPLATE + "#board", context)
        return render(request, BOARD_TEMPLATE, context, status=400)
    already = len(notes) - added
    status = f"Coded {added} note{'s' if added != 1 else ''} to “{mode.name}”" + (" (new mode)" if created else "")
    if already:
        status += f"; {already} already had it"
    status += "."
    if request.htmx:
        return render(request, BOARD_TEMPLATE + "#board", _board_context(access, params, status=status))
    messages.success(request, status)
    return redirect(reverse("coding_board", args=[slug]) + params.position)


# The review page: a note's modes as chips, and the `m` picker ---------------------------------------------------


def _note(project: Project, note_id: int) -> Note:
    return get_object_or_404(Note.objects.select_related("trace"), trace__project=project, pk=note_id)


def _chips_response(request: HttpRequest, access: ProjectAccess, note: Note, error: str = "") -> HttpResponse:
    if not request.htmx:
        if error:
            messages.error(request, error)
        url = reverse("trace_detail", args=[access.project.slug, note.trace.external_id])
        return redirect(f"{url}#note-{note.pk}")
    context = {"project": access.project, "access": access, "note": note, "mode_error": error}
    return render(request, MODES_TEMPLATE, context)


@login_required
@require_POST
def note_mode_assign(request: HttpRequest, slug: str, note_id: int) -> HttpResponse:
    """Code one note to an existing mode (`mode` = its id)."""
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    note = _note(access.project, note_id)
    raw = request.POST.get("mode", "")
    try:
        with transaction.atomic():
            mode, _ = _chosen_mode(access.project, raw, "", request.user)
            notes_assign(notes=[note], failure_mode=mode)
    except DomainError as exc:
        return _chips_response(request, access, note, str(exc))
    return _chips_response(request, access, note)


@login_required
@require_POST
def note_mode_create(request: HttpRequest, slug: str, note_id: int) -> HttpResponse:
    """Create a mode named `name` and code the note to it, in one transaction."""
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    note = _note(access.project, note_id)
    try:
        with transaction.atomic():
            name = _new_mode_name(request.POST.get("name", ""))
            mode = failure_mode_create(project=access.project, name=name, actor=request.user)
            notes_assign(notes=[note], failure_mode=mode)
    except DomainError as exc:
        return _chips_response(request, access, note, str(exc))
    return _chips_response(request, access, note)


@login_required
@require_POST
def note_mode_remove(request: HttpRequest, slug: str, note_id: int, mode_id: int) -> HttpResponse:
    """Take one mode off one note (a chip's ×)."""
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    note = _note(access.project, note_id)
    mode = access.get_object_or_404(FailureMode, pk=mode_id)
    notes_unassign(notes=[note], failure_mode=mode)
    return _chips_response(request, access, note)


@login_required
@require_GET
def failure_mode_choices(request: HttpRequest, slug: str) -> JsonResponse:
    """The picker's options: `{"modes": [{"id", "name"}]}`, non-retired modes by name."""
    access = get_project_for_user(request, slug)
    modes = [{"id": mode.pk, "name": mode.name} for mode in mode_choices(access.project)]
    return JsonResponse({"modes": modes})
