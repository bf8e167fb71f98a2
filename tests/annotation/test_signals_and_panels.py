"""How later stages hear of stored traces (annotation.signals) and add panels to annotation's pages
(annotation.panels), without annotation importing them."""

from __future__ import annotations

import io
import json

import pytest
from django.test import RequestFactory

from annotation import ingest
from annotation.models import Trace
from annotation.panels import panel_register, panel_unregister, panels_render
from annotation.signals import StoredBatch, traces_stored

pytestmark = pytest.mark.django_db


def jsonl(items: list[dict]) -> io.BytesIO:
    return io.BytesIO("".join(json.dumps(item) + "\n" for item in items).encode())


@pytest.fixture
def heard():
    batches: list[StoredBatch] = []

    def listen(*, batch: StoredBatch, **_kwargs: object) -> None:
        batches.append(batch)

    traces_stored.connect(listen, sender=Trace, dispatch_uid="test-listener")
    yield batches
    traces_stored.disconnect(sender=Trace, dispatch_uid="test-listener")


@pytest.mark.parametrize("orm", [False, True])
def test_every_stored_trace_is_announced_once_with_its_source_and_duplicates_are_not(project, heard, monkeypatch, orm):
    if orm:
        monkeypatch.setattr(ingest, "_use_copy", lambda: False)
    items = [{"id": f"t-{i}", "input": "q", "source": "production" if i % 2 else "staging"} for i in range(7)]
    ingest.import_stream(project=project, stream=jsonl(items))
    assert [(b.project, b.external_ids, b.sources, b.created) for b in heard] == [
        (project, [f"t-{i}" for i in range(7)], ["staging", "production"] * 3 + ["staging"], [True] * 7)
    ]
    ids = dict(Trace.objects.filter(project=project).values_list("external_id", "id"))
    # The writer passes on the ids it knows; those it passes are right.
    assert all(ids[external_id] == trace_id for external_id, trace_id in heard[0].ids.items())

    heard.clear()
    ingest.import_stream(project=project, stream=jsonl(items))  # all duplicates: nothing stored, nothing heard
    assert heard == []


@pytest.mark.parametrize("orm", [False, True])
def test_an_update_says_which_traces_changed_source(project, heard, monkeypatch, orm):
    if orm:
        monkeypatch.setattr(ingest, "_use_copy", lambda: False)
    ingest.import_stream(project=project, stream=jsonl([{"id": "a", "input": "q", "source": "dev"}]))
    heard.clear()
    resent = [{"id": "a", "input": "q2", "source": "production"}, {"id": "b", "input": "q", "source": "dev"}]
    ingest.import_stream(project=project, stream=jsonl(resent), on_conflict="update")
    (batch,) = heard
    assert dict(zip(batch.external_ids, batch.created, strict=True)) == {"a": False, "b": True}
    assert batch.source_changed == {"a"}
    heard.clear()
    ingest.import_stream(project=project, stream=jsonl(resent), on_conflict="update")
    assert heard[0].source_changed == frozenset()


def test_what_a_receiver_writes_is_rolled_back_with_a_strict_import(project, heard):
    items = [{"id": "ok", "input": "q"}, {"id": "bad"}]  # the second has no input, output or messages
    report = ingest.import_stream(project=project, stream=jsonl(items), strict=True)
    assert report.rolled_back and not Trace.objects.filter(project=project).exists()


def test_panels_render_in_order_with_the_page_context_and_hide_when_asked(project, expert, settings, tmp_path):
    (tmp_path / "first.html").write_text("<p>first {{ project.slug }} {{ extra }}</p>")
    (tmp_path / "second.html").write_text("<p>second {{ extra }}</p>")
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": [tmp_path, *settings.TEMPLATES[0]["DIRS"]]}]
    request = RequestFactory().get("/")
    request.user = expert
    try:
        panel_register(slot="project", name="zz-second", template="second.html", context=lambda c: {"extra": "<b>"})
        panel_register(slot="project", name="zz-first", template="first.html", context=lambda c: {"extra": 1}, order=1)
        panel_register(slot="project", name="zz-hidden", template="second.html", context=lambda c: None)
        rendered = [
            str(html)
            for html in panels_render(slot="project", request=request, context={"project": project})
            if "first" in html or "second" in html
        ]
        assert rendered == ["<p>first acme 1</p>", "<p>second &lt;b&gt;</p>"]
    finally:
        for name in ("zz-second", "zz-first", "zz-hidden"):
            panel_unregister(slot="project", name=name)
    with pytest.raises(ValueError, match="slot: expected one of project, review, criterion"):
        panel_register(slot="sidebar", name="x", template="x.html", context=lambda c: {})


def test_the_review_and_project_pages_show_the_suites_panels(project, expert_client):
    trace = Trace.objects.create(project=project, external_id="t-1", input="q")
    assert 'id="golden-panel"' in expert_client.get(f"/projects/acme/traces/{trace.external_id}/").content.decode()
    assert 'id="golden-overview"' in expert_client.get("/projects/acme/").content.decode()
