"""Building OTLP export requests with the opentelemetry-proto messages (the real encodings, not hand-written bytes)."""

from __future__ import annotations

import os
from typing import Any

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

BASE_NS = 1_764_800_000_000_000_000


def new_trace_id() -> str:
    return os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def _value(value: Any) -> AnyValue:
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(string_value=str(value))


def span(
    trace_id: str,
    span_id: str,
    parent: str = "",
    *,
    name: str = "step",
    start_ms: int = 0,
    end_ms: int = 10,
    attributes: dict[str, Any] | None = None,
    error: str = "",
    kind: int = 1,
) -> Span:
    message = Span(
        trace_id=bytes.fromhex(trace_id),
        span_id=bytes.fromhex(span_id),
        parent_span_id=bytes.fromhex(parent) if parent else b"",
        name=name,
        kind=kind,
        start_time_unix_nano=BASE_NS + start_ms * 1_000_000,
        end_time_unix_nano=BASE_NS + end_ms * 1_000_000,
        attributes=[KeyValue(key=k, value=_value(v)) for k, v in (attributes or {}).items()],
    )
    if error:
        message.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message=error))
    return message


def export_request(*spans: Span, service: str = "checkout-bot") -> ExportTraceServiceRequest:
    resource_spans = ResourceSpans(scope_spans=[ScopeSpans(spans=list(spans))])
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value=service)))
    return ExportTraceServiceRequest(resource_spans=[resource_spans])


def otlp_json(request: ExportTraceServiceRequest) -> dict[str, Any]:
    """OTLP/JSON of `request`: protobuf's JSON mapping (camelCase, enums as integers) with ids as hex."""
    document = json_format.MessageToDict(request, use_integers_for_enums=True)
    for resource_spans in document.get("resourceSpans", []):
        for scope_spans in resource_spans.get("scopeSpans", []):
            for item in scope_spans.get("spans", []):
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in item:
                        item[key] = _b64_to_hex(item[key])
    return document


def _b64_to_hex(value: str) -> str:
    import base64

    return base64.b64decode(value).hex()


def llm_trace(trace_id: str, *, question: str = "Where is my order?", answer: str = "It ships today.") -> list[Span]:
    """A root span with input/output (what today's conventions read) and two children, in time order."""
    root, child, grandchild = new_span_id(), new_span_id(), new_span_id()
    return [
        span(trace_id, root, name="chat", end_ms=120, attributes={"input.value": question, "output.value": answer}),
        span(trace_id, child, root, name="retrieve", start_ms=5, end_ms=40),
        span(trace_id, grandchild, child, name="llm", start_ms=45, end_ms=110, attributes={"llm.model_name": "m1"}),
    ]
