"""trace_record reads OpenInference, OTel GenAI (attributes and the older events) and Langfuse attributes, alone and
mixed, into a native record that `trace_format.parse_record` accepts: messages deduplicated across LLM calls, tool
calls in the native shape with their results, retriever documents as context, tokens summed, session and user."""

from __future__ import annotations

import json

import pytest

from annotation.otel.conventions import NoRootSpan, trace_record
from annotation.otel.spans import SpanData
from annotation.trace_format import parse_record

TRACE = "0af7651916cd43dd8448eb211c80319c"
MS = 1_000_000
BASE = 1_764_806_400_000_000_000  # 2025-12-04T00:00:00Z in nanoseconds


def span(span_id: str, parent: str = "", *, start: int = 0, end: int = 10, name: str = "s", **attributes) -> SpanData:
    events = attributes.pop("_events", [])
    resource = attributes.pop("_resource", {"service.name": "bot"})
    return SpanData(
        trace_id=TRACE,
        span_id=span_id.rjust(16, "0"),
        parent_span_id=parent.rjust(16, "0") if parent else "",
        name=name,
        kind="internal",
        start_ns=BASE + start * MS,
        end_ns=BASE + end * MS,
        attributes={key.replace("__", "."): value for key, value in attributes.items()},
        events=events,
        resource=resource,
    )


def oi_messages(prefix: str, messages: list[dict]) -> dict:
    flat = {}
    for index, message in enumerate(messages):
        base = f"{prefix}.{index}.message."
        flat[base + "role"] = message["role"]
        if message.get("content") is not None:
            flat[base + "content"] = message["content"]
        if message.get("tool_call_id"):
            flat[base + "tool_call_id"] = message["tool_call_id"]
        for call_index, call in enumerate(message.get("tool_calls", [])):
            call_base = f"{base}tool_calls.{call_index}.tool_call."
            flat[call_base + "id"] = call["id"]
            flat[call_base + "function.name"] = call["name"]
            flat[call_base + "function.arguments"] = call["arguments"]
    return flat


def llm_span(span_id: str, parent: str, start: int, inputs: list[dict], outputs: list[dict], **extra) -> SpanData:
    attributes = {
        "openinference.span.kind": "LLM",
        **oi_messages("llm.input_messages", inputs),
        **oi_messages("llm.output_messages", outputs),
        **{key.replace("__", "."): value for key, value in extra.items()},
    }
    return SpanData(
        trace_id=TRACE,
        span_id=span_id.rjust(16, "0"),
        parent_span_id=parent.rjust(16, "0"),
        name="ChatCompletion",
        kind="internal",
        start_ns=BASE + start * MS,
        end_ns=BASE + (start + 5) * MS,
        attributes=attributes,
    )


def checked(spans: list[SpanData]) -> dict:
    record = trace_record(spans)
    parse_record(record)  # every record built here is a valid native record
    return record


def test_openinference_agent_with_tool_loop_and_retrieval() -> None:
    system = {"role": "system", "content": "You help with parcels."}
    user = {"role": "user", "content": "Where is parcel 42?"}
    asks = {
        "role": "assistant",
        "tool_calls": [{"id": "call_1", "name": "track", "arguments": '{"parcel": 42}'}],
    }
    result = {"role": "tool", "content": "in Lyon", "tool_call_id": "call_1"}
    answer = {"role": "assistant", "content": "It is in Lyon."}
    spans = [
        span(
            "1",
            start=0,
            end=100,
            name="agent",
            openinference__span__kind="AGENT",
            input__value="Where is parcel 42?",
            output__value="It is in Lyon.",
            session__id="conv-7",
            user__id="u-3",
            metadata=json.dumps({"tier": "gold"}),
            tag__tags=["vip"],
        ),
        llm_span(
            "2",
            "1",
            10,
            [system, user],
            [asks],
            llm__model_name="gpt-x",
            llm__token_count__prompt=20,
            llm__token_count__completion=5,
            llm__token_count__total=25,
        ),
        span(
            "3",
            "1",
            start=20,
            end=30,
            name="track",
            openinference__span__kind="TOOL",
            tool__name="track",
            tool__parameters='{"parcel": 42}',
            output__value="in Lyon",
        ),
        span(
            "4",
            "1",
            start=31,
            end=35,
            name="kb",
            openinference__span__kind="RETRIEVER",
            **{
                "retrieval.documents.0.document.content": "Parcels ship from Lyon.",
                "retrieval.documents.1.document.content": "Delivery takes 2 days.",
            },
        ),
        llm_span(
            "5",
            "1",
            40,
            [system, user, asks, result],
            [answer],
            llm__model_name="gpt-x",
            llm__token_count__prompt=30,
            llm__token_count__completion=7,
            llm__token_count__total=37,
        ),
    ]
    record = checked(list(reversed(spans)))  # order of arrival does not matter
    assert record["input"] == "Where is parcel 42?" and record["output"] == "It is in Lyon."
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant", "tool", "assistant"]
    call = record["messages"][2]["tool_calls"][0]
    assert call == {"id": "call_1", "type": "function", "function": {"name": "track", "arguments": '{"parcel": 42}'}}
    # The TOOL span's result is replaced by the same result as the next LLM call saw it (with its call id).
    assert record["messages"][3] == {"role": "tool", "content": "in Lyon", "tool_call_id": "call_1"}
    assert record["context"] == ["Parcels ship from Lyon.", "Delivery takes 2 days."]
    meta = record["metadata"]
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["total_tokens"]) == (50, 12, 62)
    assert meta["model"] == "gpt-x" and meta["llm_calls"] == 2 and meta["latency_ms"] == 100.0
    assert meta["user_id"] == "u-3" and meta["tier"] == "gold" and meta["tags"] == ["vip"]
    assert meta["service.name"] == "bot"
    assert record["session_id"] == "conv-7" and record["source"] == "production"
    assert record["id"] == TRACE and record["timestamp"].startswith("2025-12-04T00:00:00")


def test_multi_turn_history_is_not_repeated_even_with_identical_user_turns() -> None:
    turns = [{"role": "user", "content": "yes"}, {"role": "assistant", "content": "Sure?"}]
    root = span("1", name="chat", start=0, end=100)
    first = llm_span("2", "1", 1, turns[:1], turns[1:2])
    second = llm_span(
        "3", "1", 10, [*turns, {"role": "user", "content": "yes"}], [{"role": "assistant", "content": "Done."}]
    )
    record = checked([second, root, first])
    assert [(m["role"], m["content"]) for m in record["messages"]] == [
        ("user", "yes"),
        ("assistant", "Sure?"),
        ("user", "yes"),
        ("assistant", "Done."),
    ]
    # The root has no text: the first call's last user message and the last call's answer stand in.
    assert record["input"] == "yes" and record["output"] == "Done."


def test_genai_attributes_with_parts_and_execute_tool_span() -> None:
    inputs = [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    ]
    outputs = [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "c9", "name": "weather", "arguments": {"city": "Paris"}}],
        }
    ]
    second_in = [
        *inputs,
        *outputs,
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c9", "response": {"temp": 21}}]},
    ]
    second_out = [{"role": "assistant", "parts": [{"type": "text", "content": "21 degrees."}]}]
    spans = [
        span("1", name="invoke_agent", start=0, end=50, gen_ai__conversation__id="sess-1"),
        span(
            "2",
            "1",
            start=1,
            end=5,
            gen_ai__operation__name="chat",
            gen_ai__request__model="m-1",
            gen_ai__response__model="m-1-2025",
            gen_ai__usage__input_tokens=11,
            gen_ai__usage__output_tokens=3,
            gen_ai__input__messages=json.dumps(inputs),
            gen_ai__output__messages=json.dumps(outputs),
            gen_ai__system_instructions=json.dumps([{"type": "text", "content": "Be brief."}]),
        ),
        span(
            "3",
            "1",
            start=6,
            end=8,
            gen_ai__operation__name="execute_tool",
            gen_ai__tool__name="weather",
            gen_ai__tool__call__id="c9",
            gen_ai__tool__call__result='{"temp": 21}',
        ),
        span(
            "4",
            "1",
            start=9,
            end=12,
            gen_ai__operation__name="chat",
            gen_ai__request__model="m-1",
            gen_ai__usage__input_tokens=20,
            gen_ai__usage__output_tokens=4,
            gen_ai__input__messages=json.dumps(second_in),
            gen_ai__output__messages=json.dumps(second_out),
        ),
    ]
    record = checked(spans)
    messages = record["messages"]
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert messages[2]["tool_calls"][0]["function"] == {"name": "weather", "arguments": '{"city":"Paris"}'}
    assert messages[3]["tool_call_id"] == "c9" and json.loads(messages[3]["content"]) == {"temp": 21}
    assert record["input"] == "Weather in Paris?" and record["output"] == "21 degrees."
    assert record["session_id"] == "sess-1"
    meta = record["metadata"]
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["total_tokens"]) == (31, 7, 38)
    assert meta["models"] == ["m-1-2025", "m-1"]


def test_older_genai_events() -> None:
    events = [
        {"name": "gen_ai.system.message", "time_ns": 1, "attributes": {"content": "Be kind."}},
        {"name": "gen_ai.user.message", "time_ns": 2, "attributes": {"content": "Hi"}},
        {
            "name": "gen_ai.assistant.message",
            "time_ns": 3,
            "attributes": {
                "tool_calls": json.dumps(
                    [{"id": "t1", "type": "function", "function": {"name": "clock", "arguments": {}}}]
                )
            },
        },
        {"name": "gen_ai.tool.message", "time_ns": 4, "attributes": {"content": "12:00", "id": "t1"}},
        {
            "name": "gen_ai.choice",
            "time_ns": 5,
            "attributes": {
                "index": 0,
                "finish_reason": "stop",
                "message": json.dumps({"role": "assistant", "content": "Noon."}),
            },
        },
    ]
    spans = [span("1", name="chat m", gen_ai__system="openai", gen_ai__request__model="m", _events=events)]
    record = checked(spans)
    assert [(m["role"], m["content"]) for m in record["messages"]] == [
        ("system", "Be kind."),
        ("user", "Hi"),
        ("assistant", None),
        ("tool", "12:00"),
        ("assistant", "Noon."),
    ]
    assert record["messages"][2]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert record["messages"][3]["tool_call_id"] == "t1"
    assert record["input"] == "Hi" and record["output"] == "Noon."


def test_langfuse_attributes() -> None:
    spans = [
        span(
            "1",
            name="support",
            start=0,
            end=40,
            langfuse__trace__name="support",
            langfuse__trace__input=json.dumps("Reset my password"),
            langfuse__trace__output=json.dumps({"answer": "Check your mail."}),
            langfuse__session__id="s-9",
            langfuse__user__id="alice",
            **{"langfuse.trace.metadata.plan": "pro", "langfuse.trace.tags": ["web"]},
        ),
        span(
            "2",
            "1",
            start=5,
            end=20,
            langfuse__observation__type="generation",
            langfuse__observation__input=json.dumps([{"role": "user", "content": "Reset my password"}]),
            langfuse__observation__output=json.dumps({"role": "assistant", "content": "Check your mail."}),
            langfuse__observation__model__name="gpt-4o",
            langfuse__observation__usage_details=json.dumps({"input": 9, "output": 4, "total": 13}),
        ),
    ]
    record = checked(spans)
    assert record["input"] == "Reset my password" and record["output"] == "Check your mail."
    assert record["messages"] == [
        {"role": "user", "content": "Reset my password"},
        {"role": "assistant", "content": "Check your mail."},
    ]
    meta = record["metadata"]
    assert meta["plan"] == "pro" and meta["user_id"] == "alice" and meta["trace_name"] == "support"
    assert meta["tags"] == ["web"] and meta["model"] == "gpt-4o" and meta["total_tokens"] == 13
    assert record["session_id"] == "s-9"


def test_json_root_falls_back_to_the_llm_messages_and_resource_names_the_source() -> None:
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Q"}]})
    spans = [
        span(
            "1",
            name="ChatCompletion",
            input__value=body,
            input__mime_type="application/json",
            output__value=json.dumps({"choices": [{"message": {"content": "A"}}]}),
            output__mime_type="application/json",
            _resource={"evalstudio.source": "staging"},
            **{
                "openinference.span.kind": "LLM",
                **oi_messages("llm.input_messages", [{"role": "user", "content": "Q"}]),
                **oi_messages("llm.output_messages", [{"role": "assistant", "content": "A"}]),
            },
        ),
    ]
    record = checked(spans)
    assert (record["input"], record["output"], record["source"]) == ("Q", "A", "staging")


def test_a_root_with_only_json_keeps_the_json_text() -> None:
    record = checked([span("1", input__value='{"a": 1, "b": 2}', input__mime_type="application/json")])
    assert record["input"] == '{"a": 1, "b": 2}'


def test_no_root_span_is_named() -> None:
    with pytest.raises(NoRootSpan, match=TRACE):
        trace_record([span("2", "1")])


def test_conventions_mixed_in_one_trace() -> None:
    """A Langfuse-instrumented root, a GenAI chat span and an OpenInference retriever (several libraries in one
    process) make one record."""
    spans = [
        span(
            "1",
            name="handler",
            start=0,
            end=30,
            langfuse__trace__input=json.dumps("What is our SLA?"),
            langfuse__session__id="mix-1",
            langfuse__user__id="bo",
        ),
        span(
            "2",
            "1",
            start=2,
            end=4,
            openinference__span__kind="RETRIEVER",
            **{"retrieval.documents.0.document.content": "SLA: 99.9%."},
        ),
        span(
            "3",
            "1",
            start=5,
            end=20,
            gen_ai__operation__name="chat",
            gen_ai__request__model="m-2",
            gen_ai__usage__input_tokens=15,
            gen_ai__usage__output_tokens=4,
            gen_ai__input__messages=json.dumps([{"role": "user", "parts": [{"type": "text", "content": "SLA?"}]}]),
            gen_ai__output__messages=json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": "99.9%."}]}]
            ),
        ),
    ]
    record = checked(spans)
    assert (record["input"], record["output"]) == ("What is our SLA?", "99.9%.")
    assert record["messages"] == [{"role": "user", "content": "SLA?"}, {"role": "assistant", "content": "99.9%."}]
    assert record["context"] == ["SLA: 99.9%."]
    assert record["session_id"] == "mix-1" and record["metadata"]["user_id"] == "bo"
    assert record["metadata"]["total_tokens"] == 19 and record["metadata"]["model"] == "m-2"


def test_bad_shapes_in_attributes_never_make_an_invalid_record() -> None:
    """Attributes an instrumentation got wrong (a role nobody knows, numbers as content, broken JSON) still give a
    record parse_record accepts."""
    spans = [
        span(
            "1",
            openinference__span__kind="LLM",
            **{
                "llm.input_messages.0.message.role": "critic",
                "llm.input_messages.0.message.content": 42,
                "llm.output_messages.0.message.role": "assistant",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.name": "f",
                "llm.output_messages.0.message.tool_calls.0.tool_call.function.arguments": {"a": [1]},
                "gen_ai.input.messages": "[not json",
                "metadata": "{broken",
            },
        )
    ]
    record = checked(spans)
    assert record["messages"][0] == {"role": "user", "content": "42"}
    assert record["messages"][1]["tool_calls"][0]["function"]["arguments"] == '{"a":[1]}'


def test_users_feedback_on_spans_and_feedback_events_comes_with_the_trace() -> None:
    root = span("1", name="agent", input__value="Hi", output__value="Hello", feedback__thumbs="down")
    rating = {"name": "feedback", "time_ns": BASE, "attributes": {"feedback.rating": 2, "feedback.id": "r-9"}}
    child = span("2", "1", start=1, end=5, name="later", _events=[rating, {"name": "other", "attributes": {}}])
    record = trace_record([child, root])
    assert record["feedback"] == [
        {"kind": "thumbs", "value": "down"},
        {"kind": "rating", "value": 2, "id": "r-9:rating"},
    ]
    parse_record(record)
    assert "feedback" not in trace_record([span("1", input__value="Hi")])
