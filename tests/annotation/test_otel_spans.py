"""OTLP decoding: spans made by the real OpenTelemetry SDK and encoded by its own OTLP encoder come back whole, from
protobuf and from OTLP/JSON (hex ids); unusable spans are named, undecodable bodies refused with the reason."""

from __future__ import annotations

import json

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from annotation.otel.spans import OtlpDecodeError, request_from_body, request_from_json, spans_from_request


@pytest.fixture(scope="module")
def sdk_spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": "support-bot", "deployment.environment": "prod"})
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests.otel", "1.0")
    with tracer.start_as_current_span("agent", kind=SpanKind.SERVER) as root:
        root.set_attribute("openinference.span.kind", "AGENT")
        root.set_attribute("input.value", "Where is my parcel?")
        root.set_attribute("tag.tags", ["vip", "eu"])
        with tracer.start_as_current_span("llm", kind=SpanKind.CLIENT) as child:
            child.set_attribute("llm.token_count.prompt", 12)
            child.set_attribute("llm.invocation_parameters", json.dumps({"temperature": 0.2}))
            child.add_event("gen_ai.user.message", {"content": "Where is my parcel?"})
            child.set_status(Status(StatusCode.ERROR, "rate limited"))
    provider.shutdown()
    return exporter.get_finished_spans()


def test_protobuf_from_the_sdk_encoder_decodes_every_span(sdk_spans) -> None:
    body = encode_spans(sdk_spans).SerializeToString()
    spans, rejected = spans_from_request(request_from_body(body, "application/x-protobuf"))
    assert rejected == []
    by_name = {span.name: span for span in spans}
    root, llm = by_name["agent"], by_name["llm"]
    assert root.is_root and llm.parent_span_id == root.span_id and llm.trace_id == root.trace_id
    assert len(root.trace_id) == 32 and len(root.span_id) == 16
    assert root.kind == "server" and llm.kind == "client"
    assert root.attributes["tag.tags"] == ["vip", "eu"]
    assert llm.attributes["llm.token_count.prompt"] == 12
    assert llm.status_code == "error" and llm.status_message == "rate limited"
    assert llm.events[0]["name"] == "gen_ai.user.message"
    assert llm.events[0]["attributes"] == {"content": "Where is my parcel?"}
    assert root.resource["service.name"] == "support-bot"
    assert root.scope == {"name": "tests.otel", "version": "1.0"}
    assert root.end_ns >= root.start_ns > 0


def test_otlp_json_with_hex_ids_and_numeric_enums_decodes_the_same(sdk_spans) -> None:
    from_protobuf, _ = spans_from_request(encode_spans(sdk_spans))
    span = from_protobuf[1]
    document = {
        "resourceSpans": [
            {
                "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "support-bot"}}]},
                "scopeSpans": [
                    {
                        "scope": {"name": "tests.otel"},
                        "spans": [
                            {
                                "traceId": span.trace_id.upper(),
                                "spanId": span.span_id,
                                "name": span.name,
                                "kind": 2,
                                "startTimeUnixNano": str(span.start_ns),
                                "endTimeUnixNano": str(span.end_ns),
                                "attributes": [
                                    {"key": "tag.tags", "value": {"arrayValue": {"values": [{"stringValue": "vip"}]}}},
                                    {"key": "n", "value": {"intValue": "7"}},
                                ],
                                "status": {"code": 1},
                            }
                        ],
                    }
                ],
            }
        ]
    }
    spans, rejected = spans_from_request(request_from_body(json.dumps(document).encode(), "application/json"))
    assert rejected == []
    (decoded,) = spans
    assert decoded.trace_id == span.trace_id and decoded.span_id == span.span_id
    assert decoded.kind == "server" and decoded.status_code == "ok"
    assert decoded.attributes == {"tag.tags": ["vip"], "n": 7}
    assert decoded.start_ns == span.start_ns


def test_unusable_spans_are_rejected_by_position_with_the_reason() -> None:
    good = {"traceId": "ab" * 16, "spanId": "cd" * 8, "name": "ok", "startTimeUnixNano": "1", "endTimeUnixNano": "2"}
    zero_trace = {**good, "traceId": "00" * 16}
    short_span = {**good, "spanId": "cd" * 4}
    backwards = {**good, "startTimeUnixNano": "5", "endTimeUnixNano": "2"}
    document = {"resourceSpans": [{"scopeSpans": [{"spans": [good, zero_trace, short_span, backwards]}]}]}
    spans, rejected = spans_from_request(request_from_json(json.dumps(document)))
    assert [span.name for span in spans] == ["ok"]
    assert [(r.index, r.reason.split(" ")[0]) for r in rejected] == [
        (1, "trace_id"),
        (2, "span_id"),
        (3, "end_time_unix_nano"),
    ]


@pytest.mark.parametrize(
    ("body", "content_type", "says"),
    [
        (b"\xff\xfe not protobuf", "application/x-protobuf", "not an OTLP protobuf"),
        (b"{not json", "application/json", "not JSON"),
        (b"[1, 2]", "application/json", "an object with resourceSpans"),
        (b'{"resourceSpans": 3}', "application/json", "not an OTLP/JSON trace export request"),
        (
            json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": "xyz"}]}]}]}).encode(),
            "application/json",
            "is not hex",
        ),
        (b"[" * 5000 + b"]" * 5000, "application/json", "nested deeper than"),
        (b"{}", "text/plain", "unsupported content type 'text/plain'"),
    ],
)
def test_undecodable_bodies_say_what_is_wrong(body: bytes, content_type: str, says: str) -> None:
    with pytest.raises(OtlpDecodeError, match=says):
        request_from_body(body, content_type)
