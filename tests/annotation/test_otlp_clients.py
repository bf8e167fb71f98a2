"""The real clients against a live server: the OpenTelemetry SDK's OTLP/HTTP exporter (protobuf, plain and gzip)
and the Langfuse SDK, each with the project token as its documented configuration says; a real worker assembles."""

from __future__ import annotations

import time

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.trace import Status, StatusCode

from annotation.models import Span, SpanAssembly, Trace
from annotation.services import api_token_create

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def wait_for(condition, *, timeout: float = 30, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _provider(live_server, token: str, compression: Compression) -> tuple[TracerProvider, OTLPSpanExporter]:
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces",
        headers={"Authorization": f"Bearer {token}"},
        compression=compression,
        timeout=10,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider, exporter


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_the_sdk_exporter_delivers_a_trace_that_the_worker_assembles(live_server, project, celery_worker, compression):
    _, token = api_token_create(project=project, name="otel")
    provider, _exporter = _provider(live_server, token, compression)
    tracer = provider.get_tracer("tests")
    with tracer.start_as_current_span("chat") as root:
        root.set_attribute("input.value", "Can I return shoes?")
        with tracer.start_as_current_span("retrieve"):
            pass
        with tracer.start_as_current_span("llm") as llm:
            llm.set_attribute("llm.model_name", "m-small")
            llm.set_status(Status(StatusCode.ERROR, "rate limited once"))
        root.set_attribute("output.value", "Within 30 days.")
        trace_id = format(root.get_span_context().trace_id, "032x")
    assert provider.force_flush(10_000)
    provider.shutdown()
    wait_for(lambda: Trace.objects.filter(project=project, external_id=trace_id).exists(), what="assembly")
    trace = Trace.objects.get(project=project, external_id=trace_id)
    assert (trace.input, trace.output, trace.source) == ("Can I return shoes?", "Within 30 days.", "production")
    assert trace.metadata["service.name"] == "support-bot"
    spans = {s.name: s for s in Span.objects.filter(project=project, trace_id=trace_id)}
    assert set(spans) == {"chat", "retrieve", "llm"}
    assert (spans["llm"].status_code, spans["llm"].status_message) == ("error", "rate limited once")
    assert spans["retrieve"].parent_span_id == spans["chat"].span_id
    wait_for(lambda: not SpanAssembly.objects.exists(), what="the drain to finish")


def test_the_exporter_gets_a_failure_for_a_bad_token(live_server, project):
    exporter = OTLPSpanExporter(
        endpoint=f"{live_server.url}/v1/traces", headers={"Authorization": "Bearer es_wrong"}, timeout=5
    )
    provider = TracerProvider()
    tracer = provider.get_tracer("tests")
    span = tracer.start_span("x")
    span.end()
    assert exporter.export([span]) == SpanExportResult.FAILURE
    exporter.shutdown()
    assert Span.objects.count() == 0


def test_the_langfuse_sdk_delivers_a_trace(live_server, project, celery_worker):
    from langfuse import Langfuse

    _, token = api_token_create(project=project, name="langfuse")
    # Its own provider (not the global one), shut down here: it holds the exporter's HTTP session open otherwise.
    provider = TracerProvider()
    langfuse = Langfuse(
        public_key=project.slug,
        secret_key=token,
        host=live_server.url,
        tracer_provider=provider,
        flush_at=1,
    )
    with langfuse.start_as_current_observation(as_type="span", name="answer-question", input="Is it open?") as obs:
        with langfuse.start_as_current_observation(as_type="generation", name="llm", model="m-small") as gen:
            gen.update(output="Yes, until 6pm.")
        obs.update(output="Yes, until 6pm.")
        trace_id = langfuse.get_current_trace_id()
    langfuse.flush()
    langfuse.shutdown()
    provider.shutdown()
    wait_for(lambda: Span.objects.filter(project=project, trace_id=trace_id).count() == 2, what="the spans")
    wait_for(lambda: not SpanAssembly.objects.exists(), what="the drain to finish")
    root = Span.objects.get(project=project, trace_id=trace_id, parent_span_id="")
    child = Span.objects.get(project=project, trace_id=trace_id, parent_span_id=root.span_id)
    assert (root.name, child.name) == ("answer-question", "llm")
    # The Langfuse attributes arrive as sent, and the conventions read them into the trace the expert reviews.
    assert root.attributes["langfuse.observation.input"] == "Is it open?"
    assert child.attributes["langfuse.observation.type"] == "generation"
    wait_for(lambda: Trace.objects.filter(project=project, external_id=trace_id).exists(), what="the trace")
    trace = Trace.objects.get(project=project, external_id=trace_id)
    assert (trace.input, trace.output, trace.source) == ("Is it open?", "Yes, until 6pm.", "production")
    assert trace.metadata["model"] == "m-small"


def test_langfuse_sdk_scores_become_the_traces_feedback(live_server, project, celery_worker):
    """Scores sent by the SDK (its own queue, flushed apart from the spans: usually ahead of the assembled trace)
    are the users' feedback on that trace once the worker has assembled it; an evaluator's score is refused."""
    from langfuse import Langfuse

    from annotation.models import Feedback, PendingFeedback

    _, token = api_token_create(project=project, name="langfuse")
    provider = TracerProvider()
    # Its own HTTP client, closed at the end: the SDK's keeps the connection alive, and with it the live server's
    # request thread and its database connection, which would keep the test database from being dropped.
    http = httpx.Client()
    # A public key of its own: the SDK keeps one client per public key, and the test above shut its client down.
    langfuse = Langfuse(
        public_key="pk-scores",
        secret_key=token,
        host=live_server.url,
        tracer_provider=provider,
        httpx_client=http,
        flush_at=1,
    )
    with langfuse.start_as_current_observation(as_type="span", name="answer", input="Is it open?") as obs:
        obs.update(output="Yes, until 6pm.")
        trace_id = langfuse.get_current_trace_id()
        langfuse.score_current_trace(name="user-feedback", value=0, comment="It closes at 5pm")
    langfuse.create_score(trace_id=trace_id, name="helpful", value=1, data_type="BOOLEAN", score_id="sc-2")
    langfuse.create_score(trace_id=trace_id, name="accuracy", value=0.4)  # a rating on the scale 1
    langfuse.flush()
    langfuse.shutdown()
    provider.shutdown()
    http.close()
    wait_for(lambda: Feedback.objects.filter(trace__external_id=trace_id).count() == 4, what="the feedback")
    rows = Feedback.objects.filter(trace__external_id=trace_id)
    assert sorted((row.kind, row.negative) for row in rows) == [
        ("comment", None),
        ("rating", True),
        ("thumbs", False),
        ("thumbs", True),
    ]
    assert {row.client_id for row in rows if row.kind == "thumbs"} >= {"langfuse:sc-2"}
    assert not PendingFeedback.objects.exists()
