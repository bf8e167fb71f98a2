"""Spans made by `openinference-instrumentation-openai` around the real `openai` client, talking to the loopback LLM
server, captured by the real OpenTelemetry SDK and sent through the real OTLP protobuf encoder: `trace_record` shows
exactly the messages, tool calls and token counts of a single answer, a multi-turn chat and a tool-calling loop."""

from __future__ import annotations

import json

import openai
import pytest
from openinference.instrumentation.openai import OpenAIInstrumentor
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from annotation.otel.conventions import trace_record
from annotation.otel.spans import request_from_body, spans_from_request
from annotation.trace_format import parse_record
from tests.llm_server import Reply, ScriptedLLMServer


@pytest.fixture(scope="module")
def traced():
    """(tracer, exporter, client, llm): the openai client instrumented for this module only."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "assistant", "evalstudio.source": "staging"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        with ScriptedLLMServer() as llm:
            client = openai.OpenAI(base_url=llm.base_url, api_key="test-key", max_retries=0)
            yield provider.get_tracer("tests.app"), exporter, client, llm
    finally:
        instrumentor.uninstrument()
        provider.shutdown()


def record_of(exporter: InMemorySpanExporter) -> dict:
    """The finished spans, through the OTLP protobuf encoding as the receiver gets them, into one record."""
    body = encode_spans(exporter.get_finished_spans()).SerializeToString()
    spans, rejected = spans_from_request(request_from_body(body, "application/x-protobuf"))
    exporter.clear()
    assert rejected == [] and len({span.trace_id for span in spans}) == 1
    record = trace_record(spans)
    parse_record(record)
    return record


def test_single_answer(traced) -> None:
    _tracer, exporter, client, llm = traced
    exporter.clear()
    llm.script(Reply(content="Paris.", usage={"prompt_tokens": 12, "completion_tokens": 2}))
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "Capital of France?"}])
    record = record_of(exporter)
    assert record["input"] == "Capital of France?" and record["output"] == "Paris."
    assert record["messages"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]
    meta = record["metadata"]
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["total_tokens"]) == (12, 2, 14)
    assert meta["model"] == "gpt-test" and record["source"] == "staging"


def test_multi_turn_chat_under_one_root(traced) -> None:
    tracer, exporter, client, llm = traced
    exporter.clear()
    llm.script(
        Reply(content="Hello! How can I help?", usage={"prompt_tokens": 9, "completion_tokens": 6}),
        Reply(content="Order 7 left on Monday.", usage={"prompt_tokens": 30, "completion_tokens": 7}),
    )
    history = [{"role": "system", "content": "You are a shop assistant."}, {"role": "user", "content": "Hi"}]
    with tracer.start_as_current_span("conversation") as root:
        root.set_attribute("openinference.span.kind", "CHAIN")
        root.set_attribute("session.id", "chat-42")
        first = client.chat.completions.create(model="gpt-test", messages=history)
        history += [
            {"role": "assistant", "content": first.choices[0].message.content},
            {"role": "user", "content": "Where is order 7?"},
        ]
        client.chat.completions.create(model="gpt-test", messages=history)
    record = record_of(exporter)
    assert record["messages"] == [
        {"role": "system", "content": "You are a shop assistant."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Where is order 7?"},
        {"role": "assistant", "content": "Order 7 left on Monday."},
    ]
    assert record["input"] == "Hi" and record["output"] == "Order 7 left on Monday."
    assert record["session_id"] == "chat-42"
    meta = record["metadata"]
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["total_tokens"], meta["llm_calls"]) == (
        39,
        13,
        52,
        2,
    )


def test_tool_calling_loop(traced) -> None:
    tracer, exporter, client, llm = traced
    exporter.clear()
    call = {"id": "call_w1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    llm.script(
        Reply(
            content=None,
            tool_calls=[call],
            finish_reason="tool_calls",
            usage={"prompt_tokens": 50, "completion_tokens": 10},
        ),
        Reply(content="It is -3 °C in Oslo.", usage={"prompt_tokens": 70, "completion_tokens": 9}),
    )
    tools = [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}]
    messages = [{"role": "user", "content": "Weather in Oslo?"}]
    with tracer.start_as_current_span("agent") as root:
        root.set_attribute("openinference.span.kind", "AGENT")
        root.set_attribute("input.value", "Weather in Oslo?")
        first = client.chat.completions.create(model="gpt-test", messages=messages, tools=tools)
        asked = first.choices[0].message
        messages.append(asked.model_dump(exclude_none=True))
        with tracer.start_as_current_span("weather") as tool:
            tool.set_attribute("openinference.span.kind", "TOOL")
            tool.set_attribute("tool.name", "weather")
            tool.set_attribute("tool.parameters", asked.tool_calls[0].function.arguments)
            tool.set_attribute("output.value", "-3 °C")
        messages.append({"role": "tool", "tool_call_id": asked.tool_calls[0].id, "content": "-3 °C"})
        final = client.chat.completions.create(model="gpt-test", messages=messages, tools=tools)
        root.set_attribute("output.value", final.choices[0].message.content)
    record = record_of(exporter)
    assert [message["role"] for message in record["messages"]] == ["user", "assistant", "tool", "assistant"]
    assistant = record["messages"][1]
    assert not assistant.get("content")
    assert assistant["tool_calls"] == [
        {"id": "call_w1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}}
    ]
    assert record["messages"][2]["tool_call_id"] == "call_w1" and record["messages"][2]["content"] == "-3 °C"
    assert record["messages"][3] == {"role": "assistant", "content": "It is -3 °C in Oslo."}
    assert record["input"] == "Weather in Oslo?" and record["output"] == "It is -3 °C in Oslo."
    meta = record["metadata"]
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["total_tokens"]) == (120, 19, 139)
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {"city": "Oslo"}
