"""The real `openai` client instrumented by `openinference-instrumentation-openai`, calling the loopback LLM server
and exporting through the real SDK exporter (gzip) to a live EvalStudio: single answer, multi-turn, tool loop.

What the trace's messages become is the conventions helper's part of issue 13 (annotation/otel/conventions.py); this
test asserts what arrives in the span table (messages, tool calls, token counts as OpenInference writes them), the
span counts, and what today's conventions read (the root's input.value / output.value).
"""

from __future__ import annotations

import json

import pytest
from openai import OpenAI
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from annotation.models import Span, Trace
from annotation.otel.store import assembly_drain
from annotation.services import api_token_create
from tests.llm_server import ScriptedLLMServer

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def instrumented(live_server, project):
    from openinference.instrumentation.openai import OpenAIInstrumentor

    _, token = api_token_create(project=project, name="otel")
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        compression=Compression.Gzip,
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    with ScriptedLLMServer() as llm:
        try:
            yield provider, OpenAI(base_url=llm.base_url, api_key="test"), llm
        finally:
            instrumentor.uninstrument()
            provider.shutdown()


def _spans(trace_id: str) -> list[Span]:
    return list(Span.objects.filter(trace_id=trace_id).order_by("start_ns"))


def test_single_answer(instrumented):
    provider, client, llm = instrumented
    llm.reply("Paris.")
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("answer") as root:
        client.chat.completions.create(model="test-model", messages=[{"role": "user", "content": "Capital of France?"}])
        trace_id = format(root.get_span_context().trace_id, "032x")
        root.set_attribute("input.value", "Capital of France?")
        root.set_attribute("output.value", "Paris.")
    assembly_drain()
    spans = _spans(trace_id)
    assert len(spans) == 2
    call = spans[1].attributes
    assert call["llm.input_messages.0.message.content"] == "Capital of France?"
    assert call["llm.output_messages.0.message.content"] == "Paris."
    assert (call["llm.token_count.prompt"], call["llm.token_count.completion"]) == (10, 5)
    trace = Trace.objects.get(external_id=trace_id)
    assert (trace.input, trace.output) == ("Capital of France?", "Paris.")


def test_multi_turn_chat(instrumented):
    provider, client, llm = instrumented
    llm.reply("Hello! How can I help?")
    llm.reply("Your order ships today.")
    tracer = provider.get_tracer("app")
    messages = [{"role": "user", "content": "Hi"}]
    with tracer.start_as_current_span("conversation") as root:
        first = client.chat.completions.create(model="test-model", messages=messages)
        messages += [{"role": "assistant", "content": first.choices[0].message.content}]
        messages += [{"role": "user", "content": "Where is my order?"}]
        client.chat.completions.create(model="test-model", messages=messages)
        trace_id = format(root.get_span_context().trace_id, "032x")
        root.set_attribute("input.value", "Where is my order?")
        root.set_attribute("output.value", "Your order ships today.")
    assembly_drain()
    spans = _spans(trace_id)
    assert len(spans) == 3
    second = spans[2].attributes
    assert [second[f"llm.input_messages.{i}.message.role"] for i in range(3)] == ["user", "assistant", "user"]
    assert second["llm.input_messages.1.message.content"] == "Hello! How can I help?"
    assert Trace.objects.get(external_id=trace_id).output == "Your order ships today."


def test_tool_calling_loop(instrumented):
    provider, client, llm = instrumented
    call = {"id": "c1", "type": "function", "function": {"name": "track", "arguments": json.dumps({"order": "42"})}}
    llm.reply(None, tool_calls=[call], finish_reason="tool_calls")
    llm.reply("Order 42 ships today.")
    tools = [{"type": "function", "function": {"name": "track", "parameters": {"type": "object"}}}]
    tracer = provider.get_tracer("app")
    with tracer.start_as_current_span("agent") as root:
        messages = [{"role": "user", "content": "Where is order 42?"}]
        first = client.chat.completions.create(model="test-model", messages=messages, tools=tools)
        tool_call = first.choices[0].message.tool_calls[0]
        with tracer.start_as_current_span("track") as tool_span:
            tool_span.set_attribute("tool.name", tool_call.function.name)
        messages += [first.choices[0].message.model_dump(exclude_none=True)]
        messages += [{"role": "tool", "tool_call_id": tool_call.id, "content": "ships today"}]
        client.chat.completions.create(model="test-model", messages=messages, tools=tools)
        trace_id = format(root.get_span_context().trace_id, "032x")
        root.set_attribute("input.value", "Where is order 42?")
        root.set_attribute("output.value", "Order 42 ships today.")
    assembly_drain()
    spans = _spans(trace_id)
    assert [s.name for s in spans][0] == "agent" and len(spans) == 4
    llm_spans = [s.attributes for s in spans if "llm.input_messages.0.message.role" in s.attributes]
    assert len(llm_spans) == 2
    prefix = "llm.output_messages.0.message.tool_calls.0.tool_call.function"
    assert llm_spans[0][f"{prefix}.name"] == "track"
    assert json.loads(llm_spans[0][f"{prefix}.arguments"]) == {"order": "42"}
    assert llm_spans[1]["llm.input_messages.2.message.role"] == "tool"
    assert llm_spans[1]["llm.output_messages.0.message.content"] == "Order 42 ships today."
    assert Trace.objects.get(external_id=trace_id).input == "Where is order 42?"
