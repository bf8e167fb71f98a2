"""OpenTelemetry spans as EvalStudio reads them: decoded from OTLP (protobuf or OTLP/JSON) into plain `SpanData`.

The decoding is the `opentelemetry-proto` package's (`ExportTraceServiceRequest`); this module only turns its
messages into JSON-native values (what the span table stores and the conventions read) and says which spans are
unusable and why. OTLP/JSON differs from protobuf's canonical JSON mapping in one way that matters: trace and span
ids are hex, not base64 (the OTLP specification, "JSON Protobuf Encoding"); they are converted before parsing.
Enums as integers and camelCase keys are accepted by protobuf's parser as they are.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from core.json_input import JsonTooDeep, json_loads

PROTOBUF_TYPES = frozenset({"application/x-protobuf", "application/protobuf"})
JSON_TYPES = frozenset({"application/json"})

# Span.SpanKind and Status.StatusCode by number, named as the specification writes them (lower case).
SPAN_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
STATUS_CODES = {0: "unset", 1: "ok", 2: "error"}


class OtlpDecodeError(ValueError):
    """The body is not an OTLP trace export request in the encoding it claims; the message says what is wrong."""


@dataclass(frozen=True)
class SpanData:
    """One span, JSON-native and lossless for what EvalStudio reads: ids are lower-case hex ("" for no parent),
    times are Unix nanoseconds, attribute values are str/bool/int/float/list/dict as OTLP's AnyValue holds them."""

    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status_code: str = "unset"
    status_message: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    # [{"name": str, "time_ns": int, "attributes": {...}}] in the order received.
    events: list[dict[str, Any]] = field(default_factory=list)
    # [{"trace_id": hex, "span_id": hex, "attributes": {...}}]
    links: list[dict[str, Any]] = field(default_factory=list)
    resource: dict[str, Any] = field(default_factory=dict)
    scope: dict[str, str] = field(default_factory=dict)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def is_root(self) -> bool:
        return not self.parent_span_id


@dataclass(frozen=True)
class SpanRejection:
    """A span that cannot be stored: its 0-based position in the request (resource, scope and span order) and why."""

    index: int
    reason: str


def request_from_body(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """The export request in `body` (already un-gzipped), encoded as `content_type` says; OtlpDecodeError if not."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type in PROTOBUF_TYPES:
        request = ExportTraceServiceRequest()
        try:
            request.ParseFromString(body)
        except (DecodeError, RecursionError) as exc:
            raise OtlpDecodeError(f"not an OTLP protobuf ExportTraceServiceRequest: {exc}") from None
        return request
    if media_type in JSON_TYPES:
        return request_from_json(body)
    raise OtlpDecodeError(f"unsupported content type {media_type!r}: send application/x-protobuf or application/json")


def request_from_json(text: str | bytes, *, where: str = "") -> ExportTraceServiceRequest:
    """An OTLP/JSON export request (hex ids, enums as numbers or names, camelCase or snake_case keys)."""
    try:
        document = json_loads(text, where=where)
    except JsonTooDeep as exc:
        raise OtlpDecodeError(str(exc)) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise OtlpDecodeError(f"{where + ': ' if where else ''}not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OtlpDecodeError(f"{where + ': ' if where else ''}an OTLP/JSON request is an object with resourceSpans")
    _hex_ids_to_base64(document)
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError) as exc:
        raise OtlpDecodeError(f"{where + ': ' if where else ''}not an OTLP/JSON trace export request: {exc}") from None
    return request


def spans_from_request(request: ExportTraceServiceRequest) -> tuple[list[SpanData], list[SpanRejection]]:
    """Every usable span of the request with its resource and scope, and the unusable ones with the reason."""
    spans: list[SpanData] = []
    rejected: list[SpanRejection] = []
    index = 0
    for resource_spans in request.resource_spans:
        resource = attributes_dict(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            scope = {"name": scope_spans.scope.name, "version": scope_spans.scope.version}
            for span in scope_spans.spans:
                problem = _span_problem(span)
                if problem:
                    rejected.append(SpanRejection(index, problem))
                else:
                    spans.append(_span_data(span, resource, scope))
                index += 1
    return spans, rejected


def any_value(value: AnyValue) -> Any:
    """An OTLP AnyValue as a JSON-native value (bytes as base64 text; an empty value as None)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [any_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return attributes_dict(value.kvlist_value.values)
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode("ascii")
    return getattr(value, which)


def attributes_dict(attributes: list[KeyValue] | Any) -> dict[str, Any]:
    """OTLP key-values as a dict; a repeated key keeps its last value, as the SDKs do."""
    return {item.key: any_value(item.value) for item in attributes}


def _span_problem(span: Span) -> str:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return "trace_id must be 16 bytes and not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return "span_id must be 8 bytes and not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return "parent_span_id must be 8 bytes or empty"
    if span.end_time_unix_nano and span.end_time_unix_nano < span.start_time_unix_nano:
        return "end_time_unix_nano is before start_time_unix_nano"
    return ""


def _span_data(span: Span, resource: dict[str, Any], scope: dict[str, str]) -> SpanData:
    parent = span.parent_span_id.hex() if any(span.parent_span_id) else ""
    return SpanData(
        trace_id=span.trace_id.hex(),
        span_id=span.span_id.hex(),
        parent_span_id=parent,
        name=span.name,
        kind=SPAN_KINDS.get(span.kind, "unspecified"),
        start_ns=span.start_time_unix_nano,
        end_ns=span.end_time_unix_nano or span.start_time_unix_nano,
        status_code=STATUS_CODES.get(span.status.code, "unset"),
        status_message=span.status.message,
        attributes=attributes_dict(span.attributes),
        events=[
            {"name": event.name, "time_ns": event.time_unix_nano, "attributes": attributes_dict(event.attributes)}
            for event in span.events
        ],
        links=[
            {
                "trace_id": link.trace_id.hex(),
                "span_id": link.span_id.hex(),
                "attributes": attributes_dict(link.attributes),
            }
            for link in span.links
        ],
        resource=resource,
        scope=scope,
    )


_ID_KEYS = ("traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id")


def _hex_ids_to_base64(document: dict[str, Any]) -> None:
    """OTLP/JSON writes ids as hex; protobuf's JSON parser reads bytes as base64. Converted in place, for spans and
    their links; a value that is not hex is left for the parser to refuse (or the span check to reject)."""
    for resource_spans in _list(document, "resourceSpans", "resource_spans"):
        for scope_spans in _list(resource_spans, "scopeSpans", "scope_spans"):
            for span in _list(scope_spans, "spans"):
                _convert_ids(span)
                for link in _list(span, "links"):
                    _convert_ids(link)


def _list(parent: Any, *keys: str) -> list[Any]:
    if not isinstance(parent, dict):
        return []
    for key in keys:
        value = parent.get(key)
        if isinstance(value, list):
            return value
    return []


def _convert_ids(node: Any) -> None:
    if not isinstance(node, dict):
        return
    for key in _ID_KEYS:
        value = node.get(key)
        if isinstance(value, str) and value:
            try:
                node[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")
            except ValueError:
                raise OtlpDecodeError(f"{key} {value!r} is not hex (OTLP/JSON writes ids as hex)") from None
