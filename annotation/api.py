"""The REST API (django-ninja): `/api/v1/…`, OpenAPI document at `/api/v1/openapi.json`."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable
from typing import Any, Literal

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.utils import timezone
from django.utils.http import content_disposition_header
from ninja import NinjaAPI, Query, Schema, Status
from ninja.errors import AuthenticationError
from ninja.openapi.views import openapi_json

from annotation.access import API_AUTH, Permission, ProjectAccess, api_access, unauthorized_response
from annotation.count_filters import (
    DEFAULT_PAIR_LIMIT,
    DEFAULT_WINDOW,
    MAX_PAIR_LIMIT,
    MAX_WINDOW,
    CountFilters,
    FilterError,
    parse_bounded_int,
    parse_count_filters,
)
from annotation.feedback import FeedbackError, parse_feedback, parse_feedback_item
from annotation.feedback_services import feedback_store
from annotation.ingest import IngestReport, import_records
from annotation.models import Trace
from annotation.taxonomy import (
    failure_mode_counts,
    mode_co_occurrence,
    saturation_counts,
    saturation_summary,
)
from annotation.taxonomy_io import (
    CONTENT_TYPES,
    export_filename,
    failure_modes_export,
    notes_export_csv,
    notes_export_json,
)
from annotation.trace_format import FormatError, RawRecord, loads, read_jsonl
from core.json_input import BodyRefused, JsonTooDeep, read_json_body


def _docs_for_signed_in_users(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The interactive docs page is for people who are signed in (anonymous → the login page); the schema itself
    (`openapi.json`) stays public for client generators and holds no data. django-ninja passes both views through
    `docs_decorator`, so the schema's view is let through unchanged."""
    if getattr(view, "func", None) is openapi_json:
        return view
    return login_required(view)


api = NinjaAPI(title="EvalStudio API", version="1", urls_namespace="api", docs_decorator=_docs_for_signed_in_users)
# Every authentication failure on every route: 401 with `WWW-Authenticate: Bearer` and the reason (RFC 6750).
api.add_exception_handler(AuthenticationError, unauthorized_response)

JSON_TYPES = frozenset({"application/json"})
NDJSON_TYPES = frozenset({"application/x-ndjson", "application/ndjson", "application/jsonl"})


class Error(Schema):
    detail: str


class RejectionOut(Schema):
    index: int
    id: str | None
    error: str


class IngestResult(Schema):
    accepted: int
    duplicates: int
    rejected: list[RejectionOut]


def _error(status: int, detail: str) -> Status[dict[str, str]]:
    return Status(status, {"detail": detail})


def _records_from_body(
    request: HttpRequest,
) -> tuple[list[object] | list[RawRecord] | None, Status[dict[str, str]] | None]:
    limit = settings.EVALSTUDIO_MAX_REQUEST_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        declared_length = int(declared)
    except ValueError:
        return None, _error(400, f"Content-Length is not a number: {declared!r}")
    if declared_length > limit:
        return None, _error(413, f"The body is {declared_length:,} bytes; the limit is {limit:,} bytes")
    content_type = (request.content_type or "").lower()
    if content_type not in JSON_TYPES | NDJSON_TYPES:
        return None, _error(
            415, f"Content-Type {content_type or 'missing'!r}: send application/json or application/x-ndjson"
        )
    # Read one byte past the limit: a body without (or with a lying) Content-Length is still caught.
    body = request.read(limit + 1)
    if len(body) > limit:
        return None, _error(413, f"The body is over the limit of {limit:,} bytes")
    if not body.strip():
        return None, _error(400, 'The body is empty; send {"traces": [...]} or NDJSON, one trace per line')

    if content_type in NDJSON_TYPES:
        try:
            records = list(read_jsonl(io.BytesIO(body), max_bytes=settings.EVALSTUDIO_MAX_TRACE_BYTES))
        except FormatError as exc:
            return None, _error(400, f"The body cannot be read: {exc}")
        return records, None

    try:
        payload = loads(body)
    except JsonTooDeep as exc:
        return None, _error(400, f"The body is {exc}")
    except UnicodeDecodeError as exc:
        return None, _error(400, f"The body is not valid UTF-8 (byte {exc.start + 1})")
    except ValueError as exc:
        return None, _error(400, f"Malformed JSON: {exc}")
    if not isinstance(payload, dict) or "traces" not in payload:
        return None, _error(400, 'Expected a JSON object {"traces": [...]}')
    unknown = sorted(set(payload) - {"traces"})
    if unknown:
        return None, _error(400, f'Unknown key {unknown[0]!r}; expected only {{"traces": [...]}}')
    if not isinstance(payload["traces"], list):
        return None, _error(400, '"traces" must be a list of trace objects')
    return payload["traces"], None


def _result(report: IngestReport) -> dict[str, Any]:
    return {
        "accepted": report.accepted,
        "duplicates": report.duplicates,
        "rejected": [{"index": r.index, "id": r.id, "error": r.error} for r in report.rejected],
    }


TRACE_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "Traces in the trace JSONL format, as a JSON object or as NDJSON (one trace per line).",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["traces"],
                    "properties": {"traces": {"type": "array", "items": {"type": "object"}}},
                }
            },
            "application/x-ndjson": {"schema": {"type": "string"}},
        },
    }
}


@api.post(
    "/projects/{slug}/traces",
    auth=API_AUTH,
    response={200: IngestResult, 207: IngestResult, 400: Error, 403: Error, 404: Error, 413: Error, 415: Error},
    summary="Add traces to a project",
    description=(
        "Validates every trace on its own: 200 when all were accepted (created, or updated with "
        "`on_conflict=update`), 207 when some were rejected, each with its 0-based index, id and the reason. "
        "Re-sending a trace with the same id is counted as a duplicate and changes nothing. A trace may carry a "
        "`reference` (a known-good answer: a string or any JSON value) for reference judges."
    ),
    openapi_extra=TRACE_BODY_DOC,
)
def traces_ingest(
    request: HttpRequest, slug: str, on_conflict: Literal["skip", "update"] = "skip"
) -> Status[dict[str, Any]] | HttpResponse:
    access = api_access(request, slug, Permission.ADD_TRACES)
    if not isinstance(access, ProjectAccess):
        return access
    records, problem = _records_from_body(request)
    if problem is not None:
        return problem
    report = import_records(project=access.project, records=records or [], on_conflict=on_conflict, user=access.user)
    return Status(207 if report.rejected else 200, _result(report))


# --- users' feedback on a trace (annotation.feedback) ------------------------------------------------------------

FEEDBACK_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": (
            'One feedback item or a list of them: {"kind": "thumbs"|"rating"|"comment", "value", "scale"?, "at"?, '
            '"source"?, "user"?, "id"?}. An item whose `id` the trace already has is a retry and stores nothing.'
        ),
        "content": {
            "application/json": {
                "schema": {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
            }
        },
    }
}


class FeedbackOut(Schema):
    id: int
    kind: str
    value: str | float
    scale: float | None
    negative: bool | None
    at: str | None
    source: str
    user: str
    client_id: str
    received_at: str


class FeedbackResult(Schema):
    trace: str
    stored: list[FeedbackOut]
    duplicates: list[str]


def _feedback_out(row: Any) -> dict[str, Any]:
    return {
        "id": row.pk,
        "kind": row.kind,
        "value": row.value,
        "scale": row.scale,
        "negative": row.negative,
        "at": None if row.at is None else row.at.isoformat(),
        "source": row.source,
        "user": row.end_user,
        "client_id": row.client_id,
        "received_at": row.received_at.isoformat(),
    }


@api.post(
    "/projects/{slug}/traces/{path:external_id}/feedback",
    auth=API_AUTH,
    response={201: FeedbackResult, 200: FeedbackResult, 400: Error, 403: Error, 404: Error, 413: Error, 415: Error},
    summary="Add users' feedback (thumbs, rating, comment) to a trace",
    description=(
        "`external_id` is the trace's id. 201 with the rows stored; 200 when every item was a retry (its `id` was "
        "already stored: nothing new). All or nothing: one bad item is a 400 naming it (`feedback[2].kind: …`) "
        "and nothing is stored. 404 for an unknown trace (once the body is valid)."
    ),
    openapi_extra=FEEDBACK_BODY_DOC,
)
def trace_feedback_add(request: HttpRequest, slug: str, external_id: str) -> Status[dict[str, Any]] | HttpResponse:
    access = api_access(request, slug, Permission.ADD_TRACES)
    if not isinstance(access, ProjectAccess):
        return access
    try:
        payload = read_json_body(request, limit=settings.EVALSTUDIO_MAX_REQUEST_BYTES, parse=loads)
    except BodyRefused as exc:
        return _error(exc.status, exc.message)
    try:
        if isinstance(payload, list):
            if not payload:
                return _error(400, "feedback: the list is empty")
            records = parse_feedback(payload)
        else:
            records = [parse_feedback_item(payload, "feedback")]
    except FeedbackError as exc:
        return _error(400, str(exc))
    # Looked up after the body is checked: a bad body is a 400 whichever trace it names.
    trace = Trace.objects.filter(project=access.project, external_id=external_id).first()
    if trace is None:
        return _error(404, f"No trace {external_id!r} in this project")
    outcome = feedback_store(items=[(trace.pk, record) for record in records])
    result = {
        "trace": trace.external_id,
        "stored": [_feedback_out(row) for row in outcome.created],
        "duplicates": outcome.duplicates,
    }
    return Status(201 if outcome.created else 200, result)


# --- taxonomy exports (the files of the failure-modes page's Export block; read access as for the taxonomy below) -

EXPORT_DOC: dict[str, Any] = {
    "responses": {
        "200": {
            "description": "The file, as an attachment named `<slug>-<what>.<format>`.",
            "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "array"}}},
        }
    }
}


@api.get(
    "/projects/{slug}/failure-modes/export",
    auth=API_AUTH,
    response={403: Error, 404: Error},
    summary="Download the failure modes with their counts (CSV or JSON)",
    description=(
        "One row per failure mode: id, name, definition, retired, merged_into (a name), trace_count, note_count, "
        "share_of_reviewed_traces, share_of_failing_traces — the numbers of `GET …/failure-modes`. CSV text cells "
        "that would start a spreadsheet formula (= + - @) get a leading apostrophe."
    ),
    openapi_extra=EXPORT_DOC,
)
def failure_modes_file(request: HttpRequest, slug: str, format: Literal["csv", "json"] = "csv") -> HttpResponse:
    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    project = access.project
    response = HttpResponse(failure_modes_export(project=project, fmt=format), content_type=CONTENT_TYPES[format])
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=export_filename(project, "failure-modes", format)
    )
    return response


@api.get(
    "/projects/{slug}/notes/export",
    auth=API_AUTH,
    response={403: Error, 404: Error},
    summary="Download every note with its failure modes (CSV or JSON), streamed",
    description=(
        "One row per note in id order: note_id, trace_external_id, author, created_at, text, failure_modes — a list "
        "in JSON, names joined by `; ` in CSV. CSV text cells that would start a spreadsheet formula get a leading "
        "apostrophe."
    ),
    openapi_extra=EXPORT_DOC,
)
def notes_file(
    request: HttpRequest, slug: str, format: Literal["csv", "json"] = "csv"
) -> StreamingHttpResponse | HttpResponse:
    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    project = access.project
    pieces = notes_export_csv(project=project) if format == "csv" else notes_export_json(project=project)
    response = StreamingHttpResponse(pieces, content_type=CONTENT_TYPES[format])
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=export_filename(project, "notes", format)
    )
    return response


# --- the failure taxonomy ----------------------------------------------------------------------------------------


class FailureModeOut(Schema):
    id: int
    name: str
    definition: str
    trace_count: int
    note_count: int
    share_of_reviewed_traces: float
    share_of_failing_traces: float


class SaturationPointOut(Schema):
    reviewed: int
    distinct_failure_modes: int


# The filters of the taxonomy routes, declared for the OpenAPI document. They arrive as text and are checked by
# annotation.count_filters, so a bad value gets a 400 naming the parameter (the same words as the page's form).
SourceQuery = Query(None, description="Only traces from this source (exact match).")
MetaQuery = Query(None, description="Only traces whose metadata has this `key=value`, e.g. `locale=de`.")
FromQuery = Query(None, alias="from", description="Only traces that occurred on or after this UTC day (YYYY-MM-DD).")
ToQuery = Query(None, alias="to", description="Only traces that occurred on or before this UTC day (YYYY-MM-DD).")
PeriodQuery = Query(None, description="Only traces that occurred in the last `24h`, `7d` or `30d` (not with from/to).")
FILTERS_DESCRIPTION = (
    " Filters (`source`, `meta=key=value`, `from`/`to` dates or a `period` of 24h, 7d, 30d on the time the trace "
    "occurred) restrict the counts to the traces that pass them; shares are then fractions of the reviewed and "
    "failing traces among those. A bad filter value is a 400 whose detail names the parameter."
)


class ModePairOut(Schema):
    first_id: int
    first_name: str
    second_id: int
    second_name: str
    trace_count: int
    share_of_rarer: float


class SaturationSummaryOut(Schema):
    reviewed: int
    distinct_failure_modes: int
    window: int
    new_in_window: int
    no_new_mode_streak: int
    saturated: bool


def _filters(request: HttpRequest) -> CountFilters:
    return parse_count_filters(request.GET, now=timezone.now())


@api.get(
    "/projects/{slug}/failure-modes",
    auth=API_AUTH,
    response={200: list[FailureModeOut], 400: Error, 403: Error, 404: Error},
    summary="Failure modes with their counts",
    description=(
        "Every failure mode of the project, most frequent first (by traces, then name). `trace_count` counts each "
        "trace once however many of its notes carry the mode; `note_count` counts the notes. Shares are fractions "
        "in [0, 1]: of the reviewed traces, and of the failing traces (those with at least one `fail` label by the "
        "expert); 0 when there are none. Retired modes are listed only while notes still carry them."
        + FILTERS_DESCRIPTION
    ),
)
def failure_modes_list(
    request: HttpRequest,
    slug: str,
    source: str | None = SourceQuery,
    meta: str | None = MetaQuery,
    date_from: str | None = FromQuery,
    date_to: str | None = ToQuery,
    period: str | None = PeriodQuery,
) -> list[dict[str, Any]] | Status[dict[str, str]] | HttpResponse:
    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    project = access.project
    try:
        filters = _filters(request)
    except FilterError as exc:
        return _error(400, str(exc))
    # The response schema picks its fields from each count (and leaves out the page-only `retired`).
    return [dataclasses.asdict(count) for count in failure_mode_counts(project=project, filters=filters)]


@api.get(
    "/projects/{slug}/failure-modes/co-occurrence",
    auth=API_AUTH,
    response={200: list[ModePairOut], 400: Error, 403: Error, 404: Error},
    summary="Pairs of failure modes coded on the same traces",
    description=(
        "The pairs of failure modes that appear on the same traces, most shared traces first (at most `limit`, "
        f"default {DEFAULT_PAIR_LIMIT}, up to {MAX_PAIR_LIMIT}). `trace_count` counts each trace once per pair; "
        "`share_of_rarer` is the fraction in [0, 1] of the rarer mode's traces that also carry the other mode. "
        "The first mode of a pair is the one with the smaller id." + FILTERS_DESCRIPTION
    ),
)
def failure_modes_co_occurrence(
    request: HttpRequest,
    slug: str,
    source: str | None = SourceQuery,
    meta: str | None = MetaQuery,
    date_from: str | None = FromQuery,
    date_to: str | None = ToQuery,
    period: str | None = PeriodQuery,
    limit: str | None = Query(
        None, description=f"How many pairs, 1 to {MAX_PAIR_LIMIT} (default {DEFAULT_PAIR_LIMIT})."
    ),
) -> list[dict[str, Any]] | Status[dict[str, str]] | HttpResponse:
    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    project = access.project
    try:
        filters = _filters(request)
        count = parse_bounded_int(limit, name="limit", default=DEFAULT_PAIR_LIMIT, maximum=MAX_PAIR_LIMIT)
    except FilterError as exc:
        return _error(400, str(exc))
    return [dataclasses.asdict(pair) for pair in mode_co_occurrence(project=project, filters=filters, limit=count)]


@api.get(
    "/projects/{slug}/saturation",
    auth=API_AUTH,
    response={200: list[SaturationPointOut], 400: Error, 403: Error, 404: Error},
    summary="The saturation curve of the failure taxonomy",
    description=(
        "One point per reviewed trace, in the order of review: after the n-th reviewed trace, how many distinct "
        "failure modes have appeared on the notes of the first n. A flat tail means no new modes are appearing. "
        f"With `window=N` (1 to {MAX_WINDOW:,}), only the last N points: the tail the saturation statement reads."
    ),
)
def saturation(
    request: HttpRequest,
    slug: str,
    window: str | None = Query(None, description="Answer only the last N points of the curve."),
) -> HttpResponse | Status[dict[str, str]]:
    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    project = access.project
    try:
        tail = parse_bounded_int(window, name="window", default=0, maximum=MAX_WINDOW)
    except FilterError as exc:
        return _error(400, str(exc))
    counts = saturation_counts(project=project)
    start = max(len(counts) - tail, 0) if tail else 0
    # One point per reviewed trace: at 100,000 reviews, building and serialising a dict per point took longer
    # than computing the curve, so the JSON is written directly; the schema still documents the points.
    body = ",".join(
        f'{{"reviewed": {n}, "distinct_failure_modes": {m}}}' for n, m in enumerate(counts[start:], start=start + 1)
    )
    return HttpResponse(f"[{body}]", content_type="application/json")


@api.get(
    "/projects/{slug}/saturation/summary",
    auth=API_AUTH,
    response={200: SaturationSummaryOut, 400: Error, 403: Error, 404: Error},
    summary="The saturation statement: no new failure mode in the last N reviewed traces?",
    description=(
        f"`window` is N (default {DEFAULT_WINDOW}, 1 to {MAX_WINDOW:,}). `new_in_window` counts the failure modes "
        "whose first appearance is among the last N reviewed traces (all of them when fewer were reviewed); "
        "`saturated` is true when N traces were reviewed and none of the last N brought a new mode. "
        "`no_new_mode_streak` is how many of the latest reviewed traces brought no new mode."
    ),
)
def saturation_statement(
    request: HttpRequest,
    slug: str,
    window: str | None = Query(
        None, description=f"N, the number of latest reviewed traces (default {DEFAULT_WINDOW})."
    ),
) -> dict[str, Any] | Status[dict[str, str]] | HttpResponse:
    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    project = access.project
    try:
        size = parse_bounded_int(window, name="window", default=DEFAULT_WINDOW, maximum=MAX_WINDOW)
    except FilterError as exc:
        return _error(400, str(exc))
    summary = saturation_summary(project=project, window=size)
    return {**dataclasses.asdict(summary), "saturated": summary.saturated}
