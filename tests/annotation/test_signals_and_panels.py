"""How later stages hear of stored traces (annotation.signals) and add panels to annotation's pages
(annotation.panels), without annotation importing them."""

from __future__ import annotations

import io
import json

import pytest
from django.test import RequestFactory

from annotation import ingest
from annotation.models import Note, Trace
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

    heard.clear()
    ingest.import_stream(project=project, stream=jsonl(items))  # all duplicates: nothing stored, nothing heard
    assert heard == []


@pytest.mark.parametrize("orm", [False, True])
def test_an_update_is_announced_as_stored_but_not_created(project, heard, monkeypatch, orm):
    if orm:
        monkeypatch.setattr(ingest, "_use_copy", lambda: False)
    ingest.import_stream(project=project, stream=jsonl([{"id": "a", "input": "q", "source": "dev"}]))
    heard.clear()
    resent = [{"id": "a", "input": "q2", "source": "production"}, {"id": "b", "input": "q", "source": "dev"}]
    ingest.import_stream(project=project, stream=jsonl(resent), on_conflict="update")
    (batch,) = heard
    assert list(zip(batch.external_ids, batch.sources, batch.created, strict=True)) == [
        ("a", "production", False),
        ("b", "dev", True),
    ]


def test_a_receiver_hears_inside_the_batch_transaction_so_a_strict_rollback_undoes_its_writes(
    project, heard, monkeypatch
):
    monkeypatch.setattr(ingest, "PG_BATCH_SIZE", 1)  # "ok" is written (and heard) before "bad" is read
    monkeypatch.setattr(ingest, "ORM_BATCH_SIZE", 1)

    def write(*, batch: StoredBatch, **_kwargs: object) -> None:
        Note.objects.create(trace=Trace.objects.get(project=project, external_id="ok"), author=project.expert, text="!")

    traces_stored.connect(write, sender=Trace, dispatch_uid="test-writer")
    try:
        # The last has no input, output or messages.
        items = [{"id": "ok", "input": "q"}, {"id": "ok-too", "input": "q"}, {"id": "bad"}]
        report = ingest.import_stream(project=project, stream=jsonl(items), strict=True)
    finally:
        traces_stored.disconnect(sender=Trace, dispatch_uid="test-writer")
    assert len(heard) == 1 and report.rolled_back
    assert not Trace.objects.filter(project=project).exists() and not Note.objects.exists()


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
