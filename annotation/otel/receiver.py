"""The OTLP/HTTP trace receiver: `POST /v1/traces` (bearer token) and `POST /api/public/otel/v1/traces` (HTTP Basic,
the password being the token: what the Langfuse SDK sends). Plain Django views, not ninja: the body is protobuf.

Answers as the OTLP specification says: 200 with an `ExportTraceServiceResponse` in the request's encoding
(`partial_success` when some spans were rejected), 400 undecodable, 401/403 as the rest of the API, 413 over
EVALSTUDIO_MAX_REQUEST_BYTES (compressed or inflated: a gzip bomb stops at the limit), 415 another content type, 429
(core/ratelimit.py) and 503 with Retry-After, which the exporters retry. The spans are committed before the 200.
An error's body is a `google.rpc.Status` (its gRPC code and the message) in the request's encoding, as the
specification asks: protobuf for a protobuf request, its JSON mapping otherwise.
"""

from __future__ import annotations

import json
import logging
import zlib

from django.conf import settings
from django.db import InterfaceError, OperationalError, transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from annotation.access import (
    MISSING_CREDENTIALS,
    TOKEN_DENIED,
    ApiUnauthorized,
    BearerToken,
    Permission,
    ProjectAccess,
    basic_token,
)
from annotation.otel.spans import JSON_TYPES, PROTOBUF_TYPES, OtlpDecodeError, request_from_body, spans_from_request
from annotation.otel.store import spans_store
from core.api_errors import detail_response
from core.counters import SPANS_ACCEPTED, SPANS_REJECTED, counter_add

logger = logging.getLogger(__name__)

# How long an exporter should wait before retrying when the database is away (as the REST API says).
DATABASE_AWAY_RETRY_AFTER_SECONDS = 5
# The partial_success message names this many rejected spans, then counts the rest.
REJECTIONS_NAMED = 10
BASIC_REALM = 'Basic realm="otlp"'


# The gRPC status code an HTTP error stands for (google.rpc.Code), for the Status message.
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 405: 12, 413: 8, 415: 3, 429: 8, 503: 14}
GRPC_INTERNAL = 13


def _detail(status: int, detail: str, *, headers: dict[str, str] | None = None) -> HttpResponse:
    """An error answer; `_as_status` gives it its final form once the request's encoding is known."""
    response = detail_response(status, detail, headers=headers)
    response.otlp_detail = detail  # type: ignore[attr-defined]
    return response


def _as_status(request: HttpRequest, response: HttpResponse) -> HttpResponse:
    """An error answer's body as a `google.rpc.Status` in the request's encoding (success answers pass through)."""
    detail = getattr(response, "otlp_detail", None)
    if detail is None:
        return response
    status = Status(code=GRPC_CODES.get(response.status_code, GRPC_INTERNAL), message=detail)
    if request.content_type in PROTOBUF_TYPES:
        response.content = status.SerializeToString()
        response["Content-Type"] = "application/x-protobuf"
    else:
        response.content = json.dumps({"code": status.code, "message": detail}).encode()
        response["Content-Type"] = "application/json"
    return response


def otlp_error(request: HttpRequest, status: int, detail: str, headers: dict[str, str]) -> HttpResponse:
    """An error answer in OTLP's form, for refusals made before the receiver runs (core.ratelimit's 429)."""
    return _as_status(request, _detail(status, detail, headers=headers))


class _Refused(Exception):
    def __init__(self, response: HttpResponse) -> None:
        self.response = response


def _bearer_token(request: HttpRequest) -> str:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        raise ApiUnauthorized(MISSING_CREDENTIALS, token_sent=bool(request.headers.get("Authorization")))
    if not raw.strip():
        raise ApiUnauthorized("The Authorization header must be 'Bearer <token>'", token_sent=True)
    return raw.strip()


def _unauthorized(exc: ApiUnauthorized, challenge: str) -> HttpResponse:
    if exc.token_sent and challenge.startswith("Bearer"):
        challenge += ', error="invalid_token"'
    return _detail(401, str(exc.message), headers={"WWW-Authenticate": challenge})


def _inflate(body: bytes, limit: int) -> bytes:
    """gzip-decoded `body`, never holding more than `limit` + 1 inflated bytes (a bomb stops there: 413)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
        if len(out) > limit or inflater.unconsumed_tail:
            raise _Refused(_detail(413, f"The body inflates past the limit of {limit:,} bytes"))
        if not inflater.eof:
            raise _Refused(_detail(400, "Content-Encoding gzip: the gzip stream is truncated"))
    except zlib.error as exc:
        raise _Refused(_detail(400, f"Content-Encoding gzip: the body is not gzip ({exc})")) from None
    return out


def _read_body(request: HttpRequest) -> tuple[bytes, str]:
    """The decoded body and its media type, or _Refused with the 413/415/400 answer."""
    limit = settings.EVALSTUDIO_MAX_REQUEST_BYTES
    declared = request.META.get("CONTENT_LENGTH") or "0"
    try:
        declared_length = int(declared)
    except ValueError:
        raise _Refused(_detail(400, f"Content-Length is not a number: {declared!r}")) from None
    if declared_length > limit:
        raise _Refused(_detail(413, f"The body is {declared_length:,} bytes; the limit is {limit:,} bytes"))
    media_type = (request.content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in PROTOBUF_TYPES | JSON_TYPES:
        raise _Refused(
            _detail(415, f"Content-Type {media_type or 'missing'!r}: send application/x-protobuf or application/json")
        )
    # One byte past the limit: a body without (or with a lying) Content-Length is still caught.
    body = request.read(limit + 1)
    if len(body) > limit:
        raise _Refused(_detail(413, f"The body is over the limit of {limit:,} bytes"))
    encoding = request.headers.get("Content-Encoding", "").strip().lower()
    if encoding == "gzip":
        body = _inflate(body, limit)
    elif encoding not in ("", "identity"):
        raise _Refused(_detail(415, f"Content-Encoding {encoding!r}: send gzip or no encoding"))
    return body, media_type


def _response(message: ExportTraceServiceResponse, media_type: str) -> HttpResponse:
    if media_type in JSON_TYPES:
        return JsonResponse(json_format.MessageToDict(message), content_type="application/json")
    return HttpResponse(message.SerializeToString(), content_type="application/x-protobuf")


def _export(request: HttpRequest, token_of: object, challenge: str) -> HttpResponse:
    if request.method != "POST":
        response = _detail(405, "POST an OTLP ExportTraceServiceRequest here")
        response["Allow"] = "POST"
        return response
    try:
        try:
            raw = token_of(request)  # type: ignore[operator]
            api_token = BearerToken().authenticate(request, raw)
        except ApiUnauthorized as exc:
            return _unauthorized(exc, challenge)
        access = ProjectAccess(project=api_token.project, token=api_token)
        if not access.can(Permission.ADD_TRACES):
            return _detail(403, TOKEN_DENIED)
        try:
            body, media_type = _read_body(request)
        except _Refused as refused:
            return refused.response
        try:
            export = request_from_body(body, media_type)
        except OtlpDecodeError as exc:
            return _detail(400, str(exc))
        spans, rejections = spans_from_request(export)
        with transaction.atomic():
            spans_store(project=access.project, spans=spans)
    except (OperationalError, InterfaceError) as exc:
        logger.warning("OTLP export to %s: the database is away: %s", request.path, exc)
        return _detail(
            503,
            "The database is not answering (restarting or unreachable); retry in a few seconds.",
            headers={"Retry-After": str(DATABASE_AWAY_RETRY_AFTER_SECONDS)},
        )
    counter_add(SPANS_ACCEPTED, project_id=access.project.pk, n=len(spans))
    if rejections:
        counter_add(SPANS_REJECTED, project_id=access.project.pk, n=len(rejections))
    message = ExportTraceServiceResponse()
    if rejections:
        named = "; ".join(f"span {r.index}: {r.reason}" for r in rejections[:REJECTIONS_NAMED])
        more = len(rejections) - REJECTIONS_NAMED
        message.partial_success.rejected_spans = len(rejections)
        message.partial_success.error_message = named + (f"; and {more} more" if more > 0 else "")
    return _response(message, media_type)


@csrf_exempt
def otlp_traces(request: HttpRequest) -> HttpResponse:
    """`POST /v1/traces` with `Authorization: Bearer <project token>` (OTEL_EXPORTER_OTLP_HEADERS)."""
    return _as_status(request, _export(request, _bearer_token, 'Bearer realm="api"'))


@csrf_exempt
def langfuse_otel_traces(request: HttpRequest) -> HttpResponse:
    """`POST /api/public/otel/v1/traces` as the Langfuse SDK sends it: Basic auth, the secret key being the token."""
    return _as_status(request, _export(request, basic_token, BASIC_REALM))
