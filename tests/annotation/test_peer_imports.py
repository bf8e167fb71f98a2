"""`import_traces --format otlp-json|phoenix|langfuse|parquet`: files written by the OTel Collector, Phoenix and
Langfuse become traces through the one ingestion path, spans grouped by trace across lines, errors named by line;
the native Parquet export reads back; tool-call arguments given as a JSON object are stored as JSON text."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from google.protobuf import json_format
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from annotation.models import Trace
from tests.annotation.test_import_export_commands import RICH, run, write_jsonl
from tests.factories import make_user

pytestmark = pytest.mark.django_db


def otlp_json_line(spans) -> str:
    """One line as the Collector's file exporter writes it: OTLP/JSON, ids in hex."""
    document = json_format.MessageToDict(encode_spans(spans))
    for resource_spans in document["resourceSpans"]:
        for scope_spans in resource_spans["scopeSpans"]:
            for span in scope_spans["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(document)


@pytest.fixture(scope="module")
def sdk_trace():
    """A root agent span with an LLM child (OpenInference attributes), and a second trace's orphan child."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-bot", "deployment.environment": "eu"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("agent") as root:
        root.set_attribute("openinference.span.kind", "AGENT")
        root.set_attribute("input.value", "Do you ship to Oslo?")
        root.set_attribute("output.value", "Yes, in 3 days.")
        root.set_attribute("session.id", "s-oslo")
        with tracer.start_as_current_span("llm") as llm:
            llm.set_attributes(
                {
                    "openinference.span.kind": "LLM",
                    "llm.input_messages.0.message.role": "user",
                    "llm.input_messages.0.message.content": "Do you ship to Oslo?",
                    "llm.output_messages.0.message.role": "assistant",
                    "llm.output_messages.0.message.content": "Yes, in 3 days.",
                    "llm.token_count.prompt": 8,
                    "llm.token_count.completion": 5,
                }
            )
    with tracer.start_as_current_span("lost-root"), tracer.start_as_current_span("orphan") as orphan:
        orphan.set_attribute("input.value", "x")
    provider.shutdown()
    spans = {span.name: span for span in exporter.get_finished_spans()}
    return spans


def test_otlp_json_groups_spans_across_lines_and_names_bad_lines(project, tmp_path, sdk_trace):
    path = tmp_path / "traces.jsonl"
    path.write_text(
        "\n".join(
            [
                otlp_json_line([sdk_trace["llm"]]),  # the child arrives first, as batch processors send it
                "{not json",
                otlp_json_line([sdk_trace["orphan"]]),  # its root is never in the file
                otlp_json_line([sdk_trace["agent"]]),
            ]
        )
        + "\n"
    )
    output, error = run("import_traces", "--project", "acme", "--format", "otlp-json", str(path))
    lines = output.splitlines()
    assert lines[0] == "created 1, duplicates 0, rejected 2"
    assert lines[1].startswith("line 2: not JSON")
    orphan_trace = format(sdk_trace["orphan"].context.trace_id, "032x")
    assert lines[2] == (
        f"line 3: trace {orphan_trace} (lines 3): none of its 1 spans is a root span (a span without a parent); "
        "the trace cannot be assembled"
    )
    assert error.returncode == 1
    trace = Trace.objects.get(project=project)
    assert trace.external_id == format(sdk_trace["agent"].context.trace_id, "032x")
    assert (trace.input, trace.output, trace.session_id, trace.source) == (
        "Do you ship to Oslo?",
        "Yes, in 3 days.",
        "s-oslo",
        "production",
    )
    assert trace.messages == [
        {"role": "user", "content": "Do you ship to Oslo?"},
        {"role": "assistant", "content": "Yes, in 3 days."},
    ]
    assert trace.metadata["service.name"] == "shop-bot" and trace.metadata["deployment.environment"] == "eu"
    assert (trace.metadata["prompt_tokens"], trace.metadata["total_tokens"]) == (8, 13)


def phoenix_rows() -> list[dict]:
    """Rows as Phoenix's `get_spans_dataframe()` holds them: flattened `attributes.*` columns whose structured
    values (messages, documents) are lists of dicts."""
    trace = "5b8aa5a2d2c872e8321cf37308d69df2"
    return [
        {
            "context.trace_id": trace,
            "context.span_id": "051581bf3cb55c13",
            "parent_id": "a2d6c0ba1b1c4b4b",
            "name": "ChatCompletion",
            "span_kind": "LLM",
            "start_time": "2026-11-30T10:00:01.000000+00:00",
            "end_time": "2026-11-30T10:00:02.500000+00:00",
            "status_code": "OK",
            "attributes.llm.input_messages": [
                {"message.role": "system", "message.content": "Answer from the docs."},
                {"message.role": "user", "message.content": "What is the refund window?"},
            ],
            "attributes.llm.output_messages": [{"message.role": "assistant", "message.content": "30 days."}],
            "attributes.llm.model_name": "gpt-4o-mini",
            "attributes.llm.token_count.prompt": 40,
            "attributes.llm.token_count.completion": 3,
            "attributes.retrieval.documents": None,
            "attributes.input.value": None,
        },
        {
            "context.trace_id": trace,
            "context.span_id": "7e2b6b1e0f8b4c11",
            "parent_id": "a2d6c0ba1b1c4b4b",
            "name": "retrieve",
            "span_kind": "RETRIEVER",
            "start_time": "2026-11-30T10:00:00.200000+00:00",
            "end_time": "2026-11-30T10:00:00.900000+00:00",
            "status_code": "OK",
            "attributes.llm.input_messages": None,
            "attributes.llm.output_messages": None,
            "attributes.llm.model_name": None,
            "attributes.llm.token_count.prompt": None,
            "attributes.llm.token_count.completion": None,
            "attributes.retrieval.documents": [{"document.content": "Refunds within 30 days.", "document.score": 0.9}],
            "attributes.input.value": None,
        },
        {
            "context.trace_id": trace,
            "context.span_id": "a2d6c0ba1b1c4b4b",
            "parent_id": None,
            "name": "rag",
            "span_kind": "CHAIN",
            "start_time": "2026-11-30T10:00:00.000000+00:00",
            "end_time": "2026-11-30T10:00:03.000000+00:00",
            "status_code": "OK",
            "attributes.llm.input_messages": None,
            "attributes.llm.output_messages": None,
            "attributes.llm.model_name": None,
            "attributes.llm.token_count.prompt": None,
            "attributes.llm.token_count.completion": None,
            "attributes.retrieval.documents": None,
            "attributes.input.value": "What is the refund window?",
        },
    ]


@pytest.mark.parametrize("saved_as", ["parquet", "jsonl"])
def test_phoenix_span_dataframe(project, tmp_path, saved_as):
    import pandas as pd

    frame = pd.DataFrame(phoenix_rows())
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column])
    path = tmp_path / f"spans.{saved_as}"
    if saved_as == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True, date_format="iso")
    output, error = run("import_traces", "--project", "acme", "--format", "phoenix", str(path))
    assert (output.strip(), error) == ("created 1, duplicates 0, rejected 0", None)
    trace = Trace.objects.get(project=project)
    assert trace.input == "What is the refund window?" and trace.output == "30 days."
    assert [m["role"] for m in trace.messages] == ["system", "user", "assistant"]
    assert trace.context == ["Refunds within 30 days."]
    assert trace.metadata["model"] == "gpt-4o-mini" and trace.metadata["total_tokens"] == 43
    assert trace.metadata["latency_ms"] == 3000.0


def test_phoenix_rows_without_ids_are_named(project, tmp_path):
    path = tmp_path / "spans.jsonl"
    rows = phoenix_rows()
    del rows[0]["context.span_id"]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    output, _ = run("import_traces", "--project", "acme", "--format", "phoenix", str(path))
    assert output.splitlines() == [
        "created 1, duplicates 0, rejected 1",
        "line 1: context.trace_id and context.span_id are required",
    ]


LANGFUSE_TRACE = {
    "id": "lf-trace-1",
    "timestamp": "2026-11-30T09:00:00.000Z",
    "name": "support-chat",
    "input": {"question": "Can I change my address?"},
    "output": "Yes, under Settings.",
    "sessionId": "lf-session-4",
    "userId": "user-77",
    "metadata": {"plan": "pro"},
    "tags": ["web"],
    "latency": 1.5,
    "observations": [
        {
            "id": "obs-2",
            "traceId": "lf-trace-1",
            "type": "GENERATION",
            "name": "answer",
            "startTime": "2026-11-30T09:00:00.400Z",
            "endTime": "2026-11-30T09:00:01.200Z",
            "parentObservationId": "obs-1",
            "model": "gpt-4o",
            "input": [
                {"role": "system", "content": "Be short."},
                {"role": "user", "content": "Can I change my address?"},
            ],
            "output": {"role": "assistant", "content": "Yes, under Settings."},
            "usageDetails": {"input": 21, "output": 6, "total": 27},
        },
        {
            "id": "obs-1",
            "traceId": "lf-trace-1",
            "type": "SPAN",
            "name": "handler",
            "startTime": "2026-11-30T09:00:00.100Z",
            "endTime": "2026-11-30T09:00:01.400Z",
            "parentObservationId": None,
        },
    ],
}


@pytest.mark.parametrize("layout", ["array", "jsonl", "api-page"])
def test_langfuse_export_with_observations(project, tmp_path, layout):
    bad = {"name": "no id", "timestamp": "2026-11-30T09:00:00Z", "observations": []}
    path = tmp_path / "langfuse.json"
    if layout == "array":
        path.write_text(json.dumps([LANGFUSE_TRACE, bad], indent=2))
    elif layout == "jsonl":
        path.write_text(json.dumps(LANGFUSE_TRACE) + "\n" + json.dumps(bad) + "\n")
    else:
        path.write_text(json.dumps({"data": [LANGFUSE_TRACE, bad], "meta": {"page": 1}}, indent=2))
    output, error = run("import_traces", "--project", "acme", "--format", "langfuse", str(path))
    where = {"array": "line 2", "jsonl": "line 2", "api-page": "line 2"}[layout]
    assert output.splitlines() == [
        "created 1, duplicates 0, rejected 1",
        f"{where}: trace.id: required (a Langfuse trace id)",
    ]
    trace = Trace.objects.get(project=project)
    assert trace.external_id == "lf-trace-1" and trace.session_id == "lf-session-4"
    assert trace.input == "Can I change my address?" and trace.output == "Yes, under Settings."
    assert trace.messages == [
        {"role": "system", "content": "Be short."},
        {"role": "user", "content": "Can I change my address?"},
        {"role": "assistant", "content": "Yes, under Settings."},
    ]
    meta = trace.metadata
    assert (meta["plan"], meta["user_id"], meta["tags"], meta["model"]) == ("pro", "user-77", ["web"], "gpt-4o")
    assert (meta["prompt_tokens"], meta["completion_tokens"], meta["total_tokens"]) == (21, 6, 27)
    assert meta["latency_ms"] == 1500.0 and meta["langfuse.trace_id"] == "lf-trace-1"


def test_parquet_export_imports_back_unchanged(project, expert, tmp_path):
    run("import_traces", "--project", "acme", str(write_jsonl(tmp_path / "in.jsonl", RICH)))
    exported = tmp_path / "export.parquet"
    call_command("export_traces", "--project", "acme", str(exported), stderr=io.StringIO())
    make_user("bob")
    output, error = run("import_traces", "--project", "copy", "--create-project", "--expert", "bob", str(exported))
    assert (output.strip(), error) == ("created 3, duplicates 0, rejected 0", None)
    first, second = tmp_path / "first.jsonl", tmp_path / "second.jsonl"
    call_command("export_traces", "--project", "acme", str(first), stderr=io.StringIO())
    call_command("export_traces", "--project", "copy", str(second), stderr=io.StringIO())
    assert first.read_bytes() == second.read_bytes()
    again = tmp_path / "again.parquet"
    call_command("export_traces", "--project", "copy", str(again), stderr=io.StringIO())
    assert again.read_bytes() == exported.read_bytes()


def test_parquet_that_is_not_parquet_is_refused(project, tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text('{"id": "x", "input": "q"}\n')
    _, error = run("import_traces", "--project", "acme", str(path))
    assert str(error) == f"{path}: not a Parquet file (it does not start with PAR1)"


def test_tool_call_arguments_as_an_object_are_stored_as_json_text(project, tmp_path):
    record = {
        "id": "args",
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": {"city": "Oslo"}}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "-3"},
        ],
    }
    path: Path = write_jsonl(tmp_path / "t.jsonl", [record])
    output, error = run("import_traces", "--project", "acme", str(path))
    assert (output.strip(), error) == ("created 1, duplicates 0, rejected 0", None)
    stored = Trace.objects.get(external_id="args").messages[1]["tool_calls"][0]["function"]["arguments"]
    assert stored == '{"city":"Oslo"}' and json.loads(stored) == {"city": "Oslo"}


def test_tool_call_arguments_of_another_type_are_still_refused(project, tmp_path):
    record = {
        "id": "bad-args",
        "messages": [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": 3}}],
            },
        ],
    }
    output, _ = run("import_traces", "--project", "acme", str(write_jsonl(tmp_path / "t.jsonl", [record])))
    assert output.splitlines()[1] == "line 1: messages[0].tool_calls[0].function.arguments: expected a string, got 3"


def test_langfuse_trace_listed_without_observation_bodies_keeps_its_input_and_output(project, tmp_path):
    listed = {**LANGFUSE_TRACE, "observations": ["obs-1", "obs-2"]}
    path = tmp_path / "page.jsonl"
    path.write_text(json.dumps({"data": [listed]}) + "\n")
    output, error = run("import_traces", "--project", "acme", "--format", "langfuse", str(path))
    assert (output.strip(), error) == ("created 1, duplicates 0, rejected 0", None)
    trace = Trace.objects.get(project=project)
    assert (trace.input, trace.output, trace.messages) == ("Can I change my address?", "Yes, under Settings.", None)


def test_span_files_parse_in_the_parser_process_as_large_files_do(project, tmp_path, sdk_trace):
    from annotation.ingest import import_path

    path = tmp_path / "traces.jsonl"
    path.write_text(otlp_json_line([sdk_trace["llm"]]) + "\n" + otlp_json_line([sdk_trace["agent"]]) + "\n")
    report = import_path(project=project, path=path, fmt="otlp-json", subprocess=True)
    assert (report.created, report.rejected) == (1, [])
    assert Trace.objects.get(project=project).output == "Yes, in 3 days."


def test_langfuse_scores_become_the_traces_feedback(project, tmp_path):
    from annotation.models import Feedback

    scores = [
        {"id": "s1", "name": "user-feedback", "value": 0, "dataType": "BOOLEAN", "comment": "wrong address"},
        {"id": "s2", "name": "quality", "value": 4, "dataType": "NUMERIC"},
    ]
    path = tmp_path / "scored.jsonl"
    path.write_text(json.dumps({**LANGFUSE_TRACE, "scores": scores}) + "\n")
    output, error = run("import_traces", "--project", "acme", "--format", "langfuse", str(path))
    assert (output.strip(), error) == ("created 1, duplicates 0, rejected 0", None)
    stored = Feedback.objects.filter(trace__project=project).order_by("kind")
    assert [(item.kind, item.negative) for item in stored] == [("comment", None), ("rating", False), ("thumbs", True)]
