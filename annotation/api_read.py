"""The read API for notebooks: `GET /api/v1/projects/{slug}/traces`, the project's traces with everything the team
said about them (the expert's labels and critiques, notes and the failure modes they are coded to), a page at a
time. Registered on the API's default router beside `POST …/traces` (annotation.api), imported by evalstudio.urls.

Paging is a keyset on the trace id (ascending), `limit`, `cursor` and unknown parameters checked as on every read
route (core.read_query).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from ninja import Query, Schema

from annotation.access import API_AUTH, Permission, ProjectAccess, api_access
from annotation.api import Error, api
from annotation.models import Label, Note, Trace
from annotation.queue import REVIEWED_FILTERS, QueueParams, filter_traces
from core.read_query import QueryError, encode_cursor, page_after, page_limit, query_refused, refuse_unknown

FILTERS = ("source", "meta", "reviewed", "mode")
PARAMETERS = tuple(sorted({"cursor", "limit", *FILTERS}))


class LabelOut(Schema):
    criterion: str
    verdict: str
    critique: str
    author: str
    updated_at: str


class NoteOut(Schema):
    text: str
    author: str
    failure_modes: list[str]
    created_at: str


class TraceOut(Schema):
    id: str
    input: str
    output: str
    messages: list[Any] | None
    context: list[Any] | None
    metadata: dict[str, Any]
    session_id: str
    task_id: str
    trial: int | None
    source: str
    timestamp: str
    reviewed_at: str | None
    labels: list[LabelOut]
    notes: list[NoteOut]
    # Every failure mode a note on the trace is coded to, by name, once each, in the notes' order.
    failure_modes: list[str]
    # The known-good answer (a string or any JSON value), null when the trace has none.
    reference: Any = None


class TracePage(Schema):
    traces: list[TraceOut]
    # Pass as `cursor` for the next page; null on the last page.
    next_cursor: str | None


def trace_filters(query: Mapping[str, str]) -> QueueParams:
    """The trace list's filters (annotation.queue.QueueParams), refusing what the page would silently ignore."""
    refuse_unknown(query, PARAMETERS, expected=", ".join(PARAMETERS))
    reviewed = query.get("reviewed", "")
    if reviewed and reviewed not in REVIEWED_FILTERS:
        raise QueryError(f"Query parameter 'reviewed' must be yes or no; got {reviewed[:40]!r}")
    mode = query.get("mode", "").strip()
    if mode and not (mode.isascii() and mode.isdigit() and len(mode) < 19):
        raise QueryError(f"Query parameter 'mode' must be a failure mode's id (a number); got {mode[:40]!r}")
    meta = query.get("meta", "").strip()
    if meta and "=" not in meta:
        raise QueryError(f"Query parameter 'meta' must be key=value; got {meta[:40]!r}")
    return QueueParams.from_query({k: query.get(k, "") for k in FILTERS}, default_order="newest")


def traces_with_reviews(queryset: QuerySet[Trace]) -> QuerySet[Trace]:
    """Each trace with its labels, notes and the notes' failure modes in a fixed number of queries (no N+1)."""
    return queryset.prefetch_related(
        Prefetch(
            "labels", queryset=Label.objects.select_related("criterion", "author").order_by("criterion__position")
        ),
        Prefetch("notes", queryset=Note.objects.select_related("author").prefetch_related("failure_modes")),
    )


def trace_out(trace: Trace) -> dict[str, Any]:
    notes = list(trace.notes.all())
    modes: dict[str, None] = {}
    for note in notes:
        for mode in note.failure_modes.all():
            modes.setdefault(mode.name)
    return {
        "id": trace.external_id,
        "input": trace.input,
        "output": trace.output,
        "messages": trace.messages,
        "context": trace.context,
        "metadata": trace.metadata,
        "session_id": trace.session_id,
        "task_id": trace.task_id,
        "trial": trace.trial,
        "source": trace.source,
        "timestamp": trace.occurred_at.isoformat(),
        "reviewed_at": None if trace.reviewed_at is None else trace.reviewed_at.isoformat(),
        "reference": trace.reference,
        "labels": [
            {
                "criterion": label.criterion.name,
                "verdict": label.verdict,
                "critique": label.critique,
                "author": label.author.get_username(),
                "updated_at": label.updated_at.isoformat(),
            }
            for label in trace.labels.all()
        ],
        "notes": [
            {
                "text": note.text,
                "author": note.author.get_username(),
                "failure_modes": [mode.name for mode in note.failure_modes.all()],
                "created_at": note.created_at.isoformat(),
            }
            for note in notes
        ],
        "failure_modes": list(modes),
    }


@api.get(
    "/projects/{slug}/traces",
    auth=API_AUTH,
    response={200: TracePage, 400: Error, 404: Error},
    summary="Read the project's traces with labels, critiques, notes and failure modes (cursor-paged)",
    description=(
        "Query: `limit` (1–500, default 100), `cursor` (the previous page's `next_cursor`), and the trace list's "
        "filters: `source`, `meta=key=value` (a metadata value), `reviewed=yes|no`, `mode` (a failure mode's id: "
        "traces with a note coded to it). Traces in the order they were stored; `next_cursor` is null on the last "
        "page. A trace's `labels` are the expert's, each with its critique. 400 names a bad parameter."
    ),
)
def traces_read(
    request: HttpRequest,
    slug: str,
    # Declared for the OpenAPI document; read as strings and checked here, so that a bad value is a 400 naming it.
    limit: str = Query("", description="Traces per page, 1–500 (default 100)"),
    cursor: str = Query("", description="The previous page's next_cursor"),
    source: str = Query("", description="Only traces of this source (e.g. production)"),
    meta: str = Query("", description="key=value: only traces whose metadata has this value"),
    reviewed: str = Query("", description="yes | no"),
    mode: str = Query("", description="A failure mode's id: traces with a note coded to it"),
) -> dict[str, Any] | HttpResponse:
    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    try:
        params = trace_filters(request.GET)
        limit = page_limit(request.GET)
        after = page_after(request.GET)
    except QueryError as exc:
        return query_refused(exc)
    queryset = filter_traces(Trace.objects.filter(project=access.project, id__gt=after), params).order_by("id")
    # One more than asked: whether there is a next page, without a COUNT.
    traces = list(traces_with_reviews(queryset)[: limit + 1])
    more = len(traces) > limit
    traces = traces[:limit]
    return {
        "traces": [trace_out(t) for t in traces],
        "next_cursor": encode_cursor(traces[-1].pk) if more else None,
    }
