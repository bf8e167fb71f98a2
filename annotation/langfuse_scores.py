"""The Langfuse SDK's score API, so that `langfuse.create_score(...)`, `span.score_trace(...)` and friends, pointed at
EvalStudio, become users' feedback on the trace: `POST /api/public/scores` (a JSON list of scores: the SDK since
v4) and `POST /api/public/ingestion` (a batch of events, of which `score-create` is read: the v3 SDK's scores).
Basic auth as on the SDK's OTLP route: any public key, the project's API token as the secret key.

A score usually arrives before its trace is assembled (the SDK flushes scores and spans separately, and assembly
runs on the worker), so a score for a trace not stored yet waits as PendingFeedback and joins the trace when it
is stored (annotation.feedback_services).

Which scores are users' feedback is annotation.feedback's reading of Langfuse scores. A score it cannot read as
feedback is refused by name in a 207 answer (the SDK logs it), never dropped silently: an evaluator's (`source`
EVAL) or a Langfuse annotator's (ANNOTATION) score, a category other than up/down, a score on a session or a
dataset run (EvalStudio keeps feedback per trace).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from annotation.access import TOKEN_DENIED, ApiUnauthorized, BearerToken, Permission, ProjectAccess, basic_token
from annotation.feedback import (
    NOT_USER_SCORE_SOURCES,
    FeedbackError,
    FeedbackRecord,
    feedback_from_langfuse_scores,
    parse_feedback_item,
)
from annotation.feedback_services import feedback_store_by_external_id
from core.json_input import BodyRefused, read_json_body

logger = logging.getLogger(__name__)

BASIC_REALM = 'Basic realm="langfuse"'
RETRY_AFTER_SECONDS = 5


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JsonResponse:
    # The shape of Langfuse's own errors ({"message": ...}), which the SDK puts in its log line.
    response = JsonResponse({"message": message}, status=status)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def _named(score: dict[str, Any], index: int) -> str:
    ident = score.get("id") or score.get("name")
    return f"score {index} ({ident})" if isinstance(ident, str) and ident else f"score {index}"


def read_score(score: object, index: int) -> tuple[str, list[FeedbackRecord]]:
    """One Langfuse score object → (its trace id, its feedback items). Raises FeedbackError naming the score and
    why it is not stored."""
    if not isinstance(score, dict):
        raise FeedbackError(f"score {index}: expected an object")
    where = _named(score, index)
    source = str(score.get("source") or "").upper()
    if source in NOT_USER_SCORE_SOURCES:
        raise FeedbackError(
            f"{where}: source {source} is {NOT_USER_SCORE_SOURCES[source]}, not a user's feedback; EvalStudio "
            "stores users' feedback (its judges are its own)"
        )
    trace_id = score.get("traceId")
    if not isinstance(trace_id, str) or not trace_id.strip():
        raise FeedbackError(
            f"{where}: no traceId; EvalStudio keeps feedback per trace, not on sessions or dataset runs"
        )
    if not isinstance(score.get("name"), str) or "value" not in score:
        raise FeedbackError(f"{where}: a score needs a name and a value")
    items = feedback_from_langfuse_scores([score])
    if not items:
        raise FeedbackError(
            f"{where}: a {score.get('dataType') or 'NUMERIC'} score named {score['name']!r} is not read as "
            "feedback (thumbs: BOOLEAN, or up/down; a rating: NUMERIC; or a comment)"
        )
    return trace_id.strip(), [parse_feedback_item(item, where) for item in items]


def _read_body(request: HttpRequest) -> Any:
    try:
        return read_json_body(request, limit=settings.EVALSTUDIO_MAX_REQUEST_BYTES)
    except BodyRefused as exc:
        raise _Refused(_error(exc.status, exc.message)) from None


class _Refused(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def _access(request: HttpRequest) -> ProjectAccess:
    try:
        api_token = BearerToken().authenticate(request, basic_token(request))
    except ApiUnauthorized as exc:
        raise _Refused(_error(401, str(exc.message), {"WWW-Authenticate": BASIC_REALM})) from None
    access = ProjectAccess(project=api_token.project, token=api_token)
    if not access.can(Permission.ADD_TRACES):
        raise _Refused(_error(403, TOKEN_DENIED))
    return access


def _store(access: ProjectAccess, scores: list[tuple[str, object]]) -> dict[str, str]:
    """(event id, score) pairs → event id → why it was refused; the rest are stored (or wait for their trace)."""
    refused: dict[str, str] = {}
    pairs: list[tuple[str, FeedbackRecord]] = []
    for index, (event_id, score) in enumerate(scores):
        try:
            trace_id, records = read_score(score, index)
        except FeedbackError as exc:
            refused[event_id] = str(exc)
            continue
        pairs.extend((trace_id, record) for record in records)
    if pairs:
        feedback_store_by_external_id(project_id=access.project.pk, items=pairs)
    for reason in refused.values():
        logger.info("Langfuse score refused for project %s: %s", access.project.slug, reason)
    return refused


def _endpoint(handle: Callable[[ProjectAccess, Any], HttpResponse]) -> Callable[[HttpRequest], HttpResponse]:
    @csrf_exempt
    def view(request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            response = _error(405, "POST scores here")
            response["Allow"] = "POST"
            return response
        try:
            access = _access(request)
            return handle(access, _read_body(request))
        except _Refused as refused:
            return refused.response
        except (OperationalError, InterfaceError) as exc:
            logger.warning("Langfuse scores to %s: the database is away: %s", request.path, exc)
            return _error(
                503,
                "The database is not answering (restarting or unreachable); retry in a few seconds.",
                {"Retry-After": str(RETRY_AFTER_SECONDS)},
            )

    view.__doc__ = handle.__doc__
    return view


def _scores(access: ProjectAccess, payload: Any) -> HttpResponse:
    """`POST /api/public/scores`: a list of scores. 202 when every one is stored; 207 with the accepted and
    rejected counts and a message per refused score otherwise (the SDK does not retry a 207)."""
    if isinstance(payload, dict):
        payload = [payload]  # one score, as the API's single-score form sends it
    if not isinstance(payload, list):
        return _error(400, "The body must be a JSON list of scores")
    refused = _store(access, [(str(index), score) for index, score in enumerate(payload)])
    if not refused:
        return JsonResponse({"message": "Accepted"}, status=202)
    return JsonResponse(
        {
            "accepted": len(payload) - len(refused),
            "rejected": len(refused),
            "errors": [{"message": reason} for reason in refused.values()],
        },
        status=207,
    )


def _ingestion(access: ProjectAccess, payload: Any) -> HttpResponse:
    """`POST /api/public/ingestion`: `{"batch": [{"id", "type", "timestamp", "body"}, ...]}`. `score-create`
    events are stored; other events are refused per event (traces come over OTLP). Always 207 with `successes`
    and `errors` per event id, as Langfuse answers."""
    batch = payload.get("batch") if isinstance(payload, dict) else None
    if not isinstance(batch, list):
        return _error(400, 'The body must be {"batch": [events]}')
    errors: list[dict[str, Any]] = []
    scores: list[tuple[str, object]] = []
    ids: list[str] = []
    for index, event in enumerate(batch):
        event_id = str(event.get("id") or index) if isinstance(event, dict) else str(index)
        ids.append(event_id)
        kind = event.get("type") if isinstance(event, dict) else None
        if kind != "score-create":
            errors.append(
                {
                    "id": event_id,
                    "status": 400,
                    "message": f"event {event_id}: type {kind!r} is not stored here; EvalStudio reads score-create "
                    "events from this API and traces from the SDK's OTLP export",
                }
            )
            continue
        scores.append((event_id, event.get("body")))
    refused = _store(access, scores)
    errors.extend({"id": event_id, "status": 400, "message": reason} for event_id, reason in refused.items())
    failed = {error["id"] for error in errors}
    successes = [{"id": event_id, "status": 201} for event_id in ids if event_id not in failed]
    return JsonResponse({"successes": successes, "errors": errors}, status=207)


langfuse_scores = _endpoint(_scores)
langfuse_ingestion = _endpoint(_ingestion)
