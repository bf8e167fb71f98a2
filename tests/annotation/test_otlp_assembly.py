"""Spans become traces: assembled when the root arrives, updated by late spans, a reviewed trace kept as reviewed."""

from __future__ import annotations

import random
import time

import pytest
from django.utils import timezone

from annotation.models import Span, SpanAssembly, Trace
from annotation.otel.store import assembly_drain
from annotation.services import api_token_create
from tests.annotation.otlp_helpers import export_request, llm_trace, new_span_id, new_trace_id, span

PROTOBUF = "application/x-protobuf"


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="otel")[1]


def send(client, token: str, *spans) -> None:
    response = client.post(
        "/v1/traces",
        data=export_request(*spans).SerializeToString(),
        content_type=PROTOBUF,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db
def test_shuffled_batches_children_first_root_last_assemble_once_the_root_arrives(client, project, token):
    rng = random.Random(13)
    traces = {}
    for n in range(12):
        trace_id = new_trace_id()
        traces[trace_id] = llm_trace(trace_id, question=f"q{n}", answer=f"a{n}")
    children = [s for spans in traces.values() for s in spans[1:]]
    roots = [spans[0] for spans in traces.values()]
    rng.shuffle(children)
    for start in range(0, len(children), 5):
        send(client, token, *children[start : start + 5])
    report = assembly_drain()
    assert (report.assembled, report.waiting_for_root) == (0, 12)
    assert Trace.objects.count() == 0 and SpanAssembly.objects.count() == 0
    rng.shuffle(roots)
    send(client, token, *roots[:7])
    send(client, token, *roots[7:])
    assert assembly_drain().assembled == 12
    assert Span.objects.count() == 36  # nothing lost
    for n, trace_id in enumerate(traces):
        trace = Trace.objects.get(project=project, external_id=trace_id)
        assert (trace.input, trace.output, trace.source) == (f"q{n}", f"a{n}", "production")
        assert trace.metadata["otel.span_count"] == 3
        assert trace.metadata["service.name"] == "checkout-bot"


@pytest.mark.django_db
def test_a_late_span_updates_an_unreviewed_trace(client, project, token):
    trace_id = new_trace_id()
    spans = llm_trace(trace_id)
    send(client, token, *spans)
    assembly_drain()
    send(client, token, span(trace_id, new_span_id(), spans[0].span_id.hex(), name="late tool"))
    assert assembly_drain().assembled == 1
    assert Trace.objects.get(external_id=trace_id).metadata["otel.span_count"] == 4


@pytest.mark.django_db
def test_a_late_span_after_review_is_stored_and_shown_but_the_reviewed_content_is_kept(
    client, expert_client, project, token
):
    trace_id = new_trace_id()
    spans = llm_trace(trace_id, question="What did the expert see?")
    send(client, token, *spans)
    assembly_drain()
    Trace.objects.filter(external_id=trace_id).update(reviewed_at=timezone.now())
    seen = Trace.objects.values("input", "output", "metadata").get(external_id=trace_id)
    late_root = span(trace_id, new_span_id(), spans[0].span_id.hex(), name="late <script>x</script>", error="timed out")
    send(client, token, late_root)
    report = assembly_drain()
    assert (report.assembled, report.kept_reviewed) == (0, 1)
    assert Trace.objects.values("input", "output", "metadata").get(external_id=trace_id) == seen
    assert Span.objects.filter(trace_id=trace_id).count() == 4
    page = expert_client.get(f"/projects/{project.slug}/traces/{trace_id}/")
    html = page.content.decode()
    assert "1 span arrived after this trace was reviewed" in html
    assert "late &lt;script&gt;x&lt;/script&gt;" in html and "<script>x</script>" not in html
    assert "span-error" in html


@pytest.mark.django_db
def test_the_trace_page_shows_the_span_tree_in_depth_first_order_with_attributes(client, expert_client, project, token):
    trace_id = new_trace_id()
    send(client, token, *llm_trace(trace_id))
    assembly_drain()
    page = expert_client.get(f"/projects/{project.slug}/traces/{trace_id}/")
    rows = page.context["span_tree"].rows
    assert [(row.span.name, row.depth) for row in rows] == [("chat", 0), ("retrieve", 1), ("llm", 2)]
    assert "&quot;llm.model_name&quot;: &quot;m1&quot;" in page.content.decode()


@pytest.mark.django_db
def test_the_trace_page_of_1000_spans_reads_them_in_one_query(
    client, expert_client, project, token, django_assert_max_num_queries
):
    trace_id = new_trace_id()
    root = new_span_id()
    spans = [span(trace_id, root, name="root", end_ms=2000, attributes={"input.value": "q", "output.value": "a"})]
    spans += [span(trace_id, new_span_id(), root, name=f"s{n}", start_ms=n, end_ms=n + 1) for n in range(999)]
    send(client, token, *spans)
    assembly_drain()
    url = f"/projects/{project.slug}/traces/{trace_id}/"
    expert_client.get(url)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        # CPU time of this thread (the test client renders the page here): a busy machine does not stretch it.
        started = time.thread_time()
        page = expert_client.get(url)
        elapsed = time.thread_time() - started
    assert page.status_code == 200 and len(page.context["span_tree"].rows) == 1000
    assert sum('"annotation_span"' in q["sql"] for q in queries.captured_queries) == 1
    assert elapsed < 5  # generous: the figure is in bench/RESULTS.md; this only catches a quadratic walk


@pytest.mark.django_db
def test_outsider_gets_404_for_an_otel_trace_page(client, outsider_client, project, token):
    trace_id = new_trace_id()
    send(client, token, *llm_trace(trace_id))
    assembly_drain()
    assert outsider_client.get(f"/projects/{project.slug}/traces/{trace_id}/").status_code == 404


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_assembles_after_commit(client, project, token, celery_worker):
    trace_id = new_trace_id()
    send(client, token, *llm_trace(trace_id, question="via the worker"))
    deadline = time.monotonic() + 20
    while not Trace.objects.filter(external_id=trace_id).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Trace.objects.get(external_id=trace_id).input == "via the worker"
    assert not SpanAssembly.objects.exists()


@pytest.mark.django_db
def test_a_trace_the_native_format_refuses_is_logged_and_its_spans_kept(client, project, token, caplog):
    trace_id = new_trace_id()
    send(client, token, span(trace_id, new_span_id(), name="root without input or output"))
    report = assembly_drain()
    assert (report.assembled, report.rejected) == (0, 1)
    assert not SpanAssembly.objects.exists() and Span.objects.filter(trace_id=trace_id).count() == 1
    assert trace_id in caplog.text


@pytest.mark.django_db
def test_a_starting_worker_queues_a_drain_only_when_traces_wait(client, project, token, monkeypatch):
    from annotation.otel import store

    sent = []
    monkeypatch.setattr(store, "task_send_now", lambda name: sent.append(name) or True)
    assert store.assembly_resume() == [] and sent == []
    send(client, token, *llm_trace(new_trace_id()))
    sent.clear()
    assert store.assembly_resume() == ["drain"] and sent == ["annotation.otel_assemble"]
