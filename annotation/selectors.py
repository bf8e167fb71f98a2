"""Reads that return querysets or plain values; no writes here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, F, OuterRef, Q, QuerySet, Subquery

from annotation.definition_diff import word_diff
from annotation.models import (
    CRITIQUED_LABELS_GOAL,
    BlindRelabel,
    Criterion,
    CriterionVersion,
    FailureMode,
    FailureModeChange,
    ImportJob,
    Label,
    LabelChange,
    Membership,
    Note,
    NoteFailureMode,
    Project,
    ReviewSession,
    ReviewSessionTrace,
    Role,
    Trace,
    Verdict,
)
from annotation.queue import keyset_after

# Ids of traces by external id. The LATERAL form makes each lookup a probe of the (project, external_id) unique
# index: with `external_id = ANY(...)` and statistics not yet caught up with a big import, the planner scanned the
# whole project for every batch, which made a million-trace import quadratic.
TRACE_IDS_SQL = (
    "SELECT b.external_id, t.id FROM unnest(%s::text[]) AS b(external_id) CROSS JOIN LATERAL"
    " (SELECT id FROM annotation_trace WHERE project_id = %s AND external_id = b.external_id) AS t"
)
TRACE_IDS_CHUNK = 5000


def project_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).distinct()


def project_get_for_user(*, user: AbstractBaseUser | AnonymousUser, slug: str) -> Project | None:
    """The project if the user is a member (or its expert), else None — callers answer 404, never 403."""
    if not user.is_authenticated:
        return None
    return project_list_for_user(user=user).filter(slug=slug).select_related("expert").first()


def project_role(*, project: Project, user: AbstractBaseUser | AnonymousUser) -> str | None:
    if not user.is_authenticated:
        return None
    if project.expert_id == user.pk:
        return Role.EXPERT
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()


def trace_ids(*, project_id: int, external_ids: Sequence[str]) -> dict[str, int]:
    """external_id → trace id for those of `external_ids` that the project has; missing ones are left out."""
    found: dict[str, int] = {}
    for start in range(0, len(external_ids), TRACE_IDS_CHUNK):
        chunk = list(external_ids[start : start + TRACE_IDS_CHUNK])
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(TRACE_IDS_SQL, [chunk, project_id])
                found.update(cursor.fetchall())
        else:
            found.update(
                Trace.objects.filter(project_id=project_id, external_id__in=chunk).values_list("external_id", "id")
            )
    return found


# Counting 100,000 labels takes ~40 ms even as an index-only scan; above this many the counts are cached briefly.
EXACT_LABEL_COUNT_LIMIT = 10_000
LABEL_COUNT_CACHE_SECONDS = 60


def criteria_with_label_counts(*, project: Project) -> list[Criterion]:
    """The project's criteria, each with `passes` and `fails`: exact on small projects, up to a minute old on
    large ones (an overview number, not ground truth — alignment reads the labels themselves)."""
    criteria = list(project.criteria.all())
    key = project.cache_key("label-counts")
    counts: dict[tuple[int, str], int] | None = cache.get(key)
    if counts is None:
        rows = (
            Label.objects.filter(criterion__project=project)
            .values_list("criterion_id", "verdict")
            .annotate(n=Count("*"))
            .order_by()
        )
        counts = {(criterion_id, verdict): n for criterion_id, verdict, n in rows}
        if sum(counts.values()) > EXACT_LABEL_COUNT_LIMIT:
            cache.set(key, counts, LABEL_COUNT_CACHE_SECONDS)
    for criterion in criteria:
        criterion.passes = counts.get((criterion.pk, Verdict.PASS), 0)
        criterion.fails = counts.get((criterion.pk, Verdict.FAIL), 0)
    return criteria


def critiqued_label_counts(*, project: Project) -> dict[int, int]:
    """criterion id → labels with a written critique (anything but blanks), counted toward the 50–100 the method
    asks for. Exact on small projects, up to a minute old on large ones, like the label counts."""
    key = project.cache_key("critiqued-counts")
    counts: dict[int, int] | None = cache.get(key)
    if counts is None:
        rows = (
            Label.objects.filter(criterion__project=project)
            .values("criterion_id")
            .annotate(n=Count("id", filter=Q(critique__regex=r"\S")), total=Count("id"))
            .order_by()
            .values_list("criterion_id", "n", "total")
        )
        counts, total = {}, 0
        for criterion_id, critiqued, labels in rows:
            counts[criterion_id] = critiqued
            total += labels
        if total > EXACT_LABEL_COUNT_LIMIT:
            cache.set(key, counts, LABEL_COUNT_CACHE_SECONDS)
    return counts


def trace_by_external_id(*, project: Project, external_id: str) -> Trace | None:
    """The project's trace with this id (the idempotency key of imports), or None."""
    return Trace.objects.filter(project=project, external_id=external_id).first()


# --- the review page -----------------------------------------------------------------------------------------------

# Enough history to explain a change of mind on the page; the full record stays in the database.
LABEL_HISTORY_LIMIT = 10
KNOWN_SOURCES_CACHE_SECONDS = 300
KNOWN_SOURCES_LIMIT = 50


def review_session_of(*, project: Project, session_id: int) -> ReviewSession | None:
    """The project's review session with this id, or None."""
    return ReviewSession.objects.filter(project=project, pk=session_id).first()


def review_session_item(*, session_id: int, trace: Trace) -> ReviewSessionTrace | None:
    """The trace's place in the review session, or None when the session does not hold it."""
    return ReviewSessionTrace.objects.filter(session_id=session_id, trace=trace).select_related("session").first()


def last_reviewed_external_id(*, project: Project) -> str | None:
    """The id of the trace reviewed last, for the "queue done" page's way back."""
    return (
        Trace.objects.filter(project=project, reviewed_at__isnull=False)
        .order_by("-reviewed_at", "-id")
        .values_list("external_id", flat=True)
        .first()
    )


def known_sources(*, project: Project) -> list[str]:
    """The project's trace sources, by name, at most KNOWN_SOURCES_LIMIT: suggestions for the queue's filter.

    Distinct over the (project, source, id) index still reads every entry (230 ms at a million traces), and the
    list only feeds a datalist of suggestions: a few minutes old is fine. Capped for the same reason."""
    key = project.cache_key("sources")
    sources = cache.get(key)
    if sources is None:
        sources = list(
            Trace.objects.filter(project=project)
            .exclude(source="")
            .order_by("source")
            .values_list("source", flat=True)
            .distinct()[:KNOWN_SOURCES_LIMIT]
        )
        cache.set(key, sources, KNOWN_SOURCES_CACHE_SECONDS)
    return sources


def label_history(*, labels: list[Label], limit: int = LABEL_HISTORY_LIMIT) -> dict[int, list[LabelChange]]:
    """label id → its saved states, newest first (at most `limit`), in one query for all the labels."""
    history: dict[int, list[LabelChange]] = {}
    if not labels:
        return history
    changes = LabelChange.objects.filter(label__in=labels).select_related("author").order_by("-changed_at", "-id")
    for change in changes[: limit * len(labels)]:
        history.setdefault(change.label_id, []).append(change)
    return {label_id: items[:limit] for label_id, items in history.items()}


@dataclass
class CriterionRow:
    """One criterion on the review page with the trace's label for it (if any) and what the last save said."""

    criterion: Criterion
    label: Label | None
    number: int  # its place among the project's criteria, from 1: the keyboard shortcut
    status: str = ""
    status_kind: str = ""  # "saved", "unsaved" or "error"
    history: list[LabelChange] = field(default_factory=list)
    critiqued: int = 0  # the criterion's labels with a critique, across the project

    @property
    def verdict(self) -> str:
        return self.label.verdict if self.label else ""

    @property
    def critiques_wanted(self) -> int:
        """Critiqued labels still short of the method's 50 for this criterion (0 once there are enough)."""
        return max(0, CRITIQUED_LABELS_GOAL[0] - self.critiqued)

    @property
    def critique_percent(self) -> int:
        return min(100, int(100 * self.critiqued / CRITIQUED_LABELS_GOAL[1]))


def trace_criterion_rows(*, trace: Trace) -> list[CriterionRow]:
    """Every criterion of the trace's project, in order, with the trace's label and its history: three queries."""
    labels = {label.criterion_id: label for label in Label.objects.filter(trace=trace)}
    history = label_history(labels=list(labels.values()))
    critiqued = critiqued_label_counts(project=trace.project)
    rows = []
    for number, criterion in enumerate(Criterion.objects.filter(project_id=trace.project_id), start=1):
        label = labels.get(criterion.pk)
        rows.append(
            CriterionRow(
                criterion=criterion,
                label=label,
                number=number,
                history=history.get(label.pk, []) if label else [],
                critiqued=critiqued.get(criterion.pk, 0),
            )
        )
    return rows


def trace_criterion_row(*, trace: Trace, criterion: Criterion) -> CriterionRow:
    """One criterion's row, as trace_criterion_rows would number it."""
    label = Label.objects.filter(trace=trace, criterion=criterion).first()
    history = label_history(labels=[label]).get(label.pk, []) if label else []
    numbers = list(Criterion.objects.filter(project_id=trace.project_id).values_list("pk", flat=True))
    return CriterionRow(
        criterion=criterion,
        label=label,
        number=numbers.index(criterion.pk) + 1,
        history=history,
        critiqued=critiqued_label_counts(project=trace.project).get(criterion.pk, 0),
    )


def trace_notes(*, trace: Trace) -> list[Note]:
    """The trace's notes with their authors and failure modes (the chips) in three queries, each marked
    `was_edited`."""
    notes = list(Note.objects.filter(trace=trace).select_related("author").prefetch_related("failure_modes"))
    for note in notes:
        # Notes written elsewhere (imports, the admin) may get two slightly different default timestamps.
        note.was_edited = (note.updated_at - note.created_at).total_seconds() > 1
    return notes


def criteria_count(*, project: Project) -> int:
    return Criterion.objects.filter(project=project).count()


def failure_mode_of(*, project_id: int, mode_id: int) -> FailureMode | None:
    """The project's failure mode with this id (retired or not), or None."""
    return FailureMode.objects.filter(project_id=project_id, pk=mode_id).first()


# --- a failure mode's page -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NotesPage:
    notes: list[Note]
    next_cursor: int | None  # the note id the next page starts below, None on the last page
    is_first: bool


def failure_mode_notes_page(*, mode: FailureMode, before_note_id: int | None, size: int) -> NotesPage:
    """The mode's notes, newest first, keyset-paginated by note id (ids follow creation order). For a frequent mode
    PostgreSQL walks the (note, mode) unique index backwards and stops after a page; for a rare one it sorts the few
    entries of the (mode, trace) index. Either way well under a millisecond at 200,000 notes."""
    links = NoteFailureMode.objects.filter(failure_mode=mode)
    if before_note_id is not None:
        links = links.filter(note_id__lt=before_note_id)
    note_ids = list(links.order_by("-note_id").values_list("note_id", flat=True)[: size + 1])
    has_more = len(note_ids) > size
    note_ids = note_ids[:size]
    notes = (
        Note.objects.filter(pk__in=note_ids)
        .select_related("trace", "author")
        # Only what the list shows: a trace's content can be megabytes.
        .only("id", "text", "created_at", "trace__external_id", "author__username")
        .order_by("-id")
    )
    return NotesPage(notes=list(notes), next_cursor=note_ids[-1] if has_more else None, is_first=before_note_id is None)


def failure_mode_totals(*, mode: FailureMode) -> tuple[int, int]:
    """(notes coded to the mode, distinct traces they are on)."""
    totals = NoteFailureMode.objects.filter(failure_mode=mode).aggregate(
        notes=Count("id"), traces=Count("trace_id", distinct=True)
    )
    return totals["notes"], totals["traces"]


def failure_mode_history(*, mode: FailureMode, limit: int) -> list[FailureModeChange]:
    """The mode's latest changes, newest first, with who made them."""
    return list(FailureModeChange.objects.filter(failure_mode=mode).select_related("actor")[:limit])


def failure_modes_merged_into(*, mode: FailureMode, limit: int) -> list[dict[str, object]]:
    """`{"id", "name"}` of the modes merged into this one, by name."""
    return list(mode.merged_from.order_by("name").values("id", "name")[:limit])


def merge_targets(*, mode: FailureMode, limit: int) -> list[dict[str, object]]:
    """`{"id", "name"}` of the modes this one can be merged into: the project's other current modes, by name."""
    return list(
        FailureMode.objects.filter(project_id=mode.project_id, retired_at__isnull=True)
        .exclude(pk=mode.pk)
        .order_by("name")
        .values("id", "name")[:limit]
    )


# --- criteria ------------------------------------------------------------------------------------------------------


def criterion_failure_mode_choices(*, project: Project, current: FailureMode | None = None) -> QuerySet[FailureMode]:
    """The modes a criterion can be linked to, by name: the current ones, plus the one already linked even if it
    has been retired since (so the form shows it)."""
    keep = Q(retired_at__isnull=True) | (Q(pk=current.pk) if current is not None else Q(pk__in=[]))
    return FailureMode.objects.filter(project=project).filter(keep).order_by("name")


# --- the projects pages --------------------------------------------------------------------------------------------


def project_list_with_role(*, user: AbstractBaseUser) -> QuerySet[Project]:
    """The user's projects with their expert and `my_role`, the user's role in each."""
    my_role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
    return project_list_for_user(user=user).select_related("expert").annotate(my_role=Subquery(my_role))


def recent_import_jobs(*, project: Project, limit: int) -> QuerySet[ImportJob]:
    """The project's latest browser uploads, newest first."""
    return ImportJob.objects.filter(project=project).order_by("-created_at", "-id")[:limit]


# --- review sessions -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewSessionsPage:
    sessions: list[ReviewSession]  # newest first, with who created them
    has_more: bool


def review_sessions_page(
    *, project: Project, before: tuple[datetime, int] | None = None, size: int
) -> ReviewSessionsPage:
    """The project's review sessions, newest first, keyset on (created_at, id) below `before`."""
    sessions = ReviewSession.objects.filter(project=project).select_related("created_by")
    if before is not None:
        sessions = sessions.filter(keyset_after(("created_at", "id"), before, descending=True))
    page = list(sessions.order_by("-created_at", "-id")[: size + 1])
    return ReviewSessionsPage(sessions=page[:size], has_more=len(page) > size)


@dataclass(frozen=True)
class ReviewSessionItemsPage:
    items: list[ReviewSessionTrace]  # in session order, each with its trace
    has_more: bool
    reviewed: int  # items of the whole session done, by the session's strategy's measure


def review_session_items_page(*, session: ReviewSession, after_position: int = 0, size: int) -> ReviewSessionItemsPage:
    """A page of the session's traces after `after_position`, and how many of all its items are done."""
    items = ReviewSessionTrace.objects.filter(session=session).select_related("trace")
    if session.relabels_blind:
        items = items.select_related("relabel")
    done = ReviewSession.done_field_for(session.strategy)
    reviewed = items.filter(**{f"{done}__isnull": False}).count()
    # Titles need input, output or messages; the rest of a trace stays in the database.
    items = items.defer("trace__context", "trace__metadata")
    page = list(items.filter(position__gt=after_position).order_by("position")[: size + 1])
    return ReviewSessionItemsPage(items=page[:size], has_more=len(page) > size, reviewed=reviewed)


def session_item_relabel(*, item: ReviewSessionTrace) -> BlindRelabel | None:
    """The item's blind re-label (with its criterion), or None before the expert labelled it blind."""
    return BlindRelabel.objects.filter(item=item).select_related("criterion").first()


def relabel_criterion(*, item: ReviewSessionTrace) -> Criterion | None:
    """The criterion the item's disagreement is about: by id (sessions made since blind re-review), else by the
    name the session recorded."""
    reason = item.reason or {}
    criteria = Criterion.objects.filter(project_id=item.session.project_id)
    if isinstance(reason.get("criterion_id"), int):
        found = criteria.filter(pk=reason["criterion_id"]).first()
        if found is not None:
            return found
    name = reason.get("criterion")
    return criteria.filter(name=name).first() if isinstance(name, str) else None


@dataclass(frozen=True)
class RelabelDrift:
    """How a criterion's labels moved in blind re-reviews of judge disagreements."""

    criterion_id: int
    criterion_name: str
    decided: int  # items decided after a blind label
    moved: int  # of which the final label moved toward the judge (the earlier one disagreed with it)
    blind_agreed: int  # of which the blind label agreed with the judge (some were then taken back)

    @property
    def share(self) -> float | None:
        return self.moved / self.decided if self.decided else None


def relabel_drift(*, project: Project, session: ReviewSession | None = None) -> list[RelabelDrift]:
    """Per criterion (in criterion order), how often re-labelled disagreements ended on the judge's side: in the
    whole project, or in one session. One aggregate query; criteria without a decided re-label are left out."""
    # Recalibrations have no judge to move toward.
    decided = BlindRelabel.objects.filter(criterion__project=project, decided_at__isnull=False).exclude(
        judge_verdict=""
    )
    if session is not None:
        decided = decided.filter(item__session=session)
    rows = (
        decided.values("criterion_id", "criterion__name", "criterion__position")
        .annotate(
            decided=Count("id"),
            moved=Count("id", filter=Q(moved_toward_judge=True)),
            blind_agreed=Count("id", filter=Q(blind_verdict=F("judge_verdict"))),
        )
        .order_by("criterion__position", "criterion_id")
    )
    return [
        RelabelDrift(
            criterion_id=row["criterion_id"],
            criterion_name=row["criterion__name"],
            decided=row["decided"],
            moved=row["moved"],
            blind_agreed=row["blind_agreed"],
        )
        for row in rows
    ]


# --- conversations: the traces of one session id, read as one conversation ------------------------------------------

CONVERSATION_PAGE = 200


@dataclass(frozen=True)
class Conversation:
    session_id: str
    traces: list[Trace]
    total: int  # all the session's traces; `traces` holds the first CONVERSATION_PAGE in time order


def conversation_read(*, project: Project, session_id: str, limit: int = CONVERSATION_PAGE) -> Conversation:
    """The project's traces that share `session_id`, oldest first (ties by id), read through the session index."""
    # The exclude restates the partial index's condition, so the planner uses `trace_conversation` at any size.
    traces = (
        Trace.objects.filter(project=project, session_id=session_id)
        .exclude(session_id="")
        .order_by("occurred_at", "id")
    )
    page = list(traces[:limit])
    total = len(page) if len(page) < limit else traces.count()
    return Conversation(session_id=session_id, traces=page, total=total)


def conversation_size(*, trace: Trace) -> int:
    """How many traces share this trace's session id (0 without one)."""
    if not trace.session_id:
        return 0
    return Trace.objects.filter(project_id=trace.project_id, session_id=trace.session_id).exclude(session_id="").count()


@dataclass(frozen=True)
class DefinitionVersion:
    """One version of a criterion's definition as its page shows it: the words changed since the version before,
    and how many labels stand under it now (a label moves to the version it was last saved or confirmed under)."""

    number: int
    name: str
    definition: str
    author: str
    created_at: datetime
    diff: list[tuple[str, str]]
    labels: int
    is_current: bool


def criterion_definition_versions(*, criterion: Criterion) -> list[DefinitionVersion]:
    """The criterion's definitions, newest first: two queries whatever the number of versions and labels."""
    versions = list(CriterionVersion.objects.filter(criterion=criterion).select_related("author").order_by("number"))
    labels = dict(
        Label.objects.filter(criterion=criterion)
        .values("criterion_version")
        .annotate(n=Count("id"))
        .values_list("criterion_version", "n")
    )
    rows, previous = [], ""
    for version in versions:
        rows.append(
            DefinitionVersion(
                number=version.number,
                name=version.name,
                definition=version.definition,
                author=version.author.get_username() if version.author else "",
                created_at=version.created_at,
                diff=word_diff(previous, version.definition) if version.number > 1 else [],
                labels=labels.get(version.number, 0),
                is_current=version.number == criterion.version,
            )
        )
        previous = version.definition
    return rows[::-1]
