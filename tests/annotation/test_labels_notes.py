"""Labels (expert only, autosaved, with history) and notes (any member, own notes editable); access on every view."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import Label, LabelChange, Note, Trace
from annotation.services import DomainError, label_submit, note_create, note_delete, note_update, trace_mark_reviewed
from tests.factories import make_criterion, make_note, make_project, make_trace, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def trace(project):
    return make_trace(project=project, external_id="t-1")


@pytest.fixture
def criterion(project):
    return make_criterion(project=project, name="factual")


def _label_url(trace, criterion) -> str:
    return reverse("label_save", args=[trace.project.slug, trace.pk, criterion.pk])


# Labels ------------------------------------------------------------------------------------------------------


def test_expert_saves_a_verdict_with_critique_and_the_trace_becomes_reviewed(expert_client, trace, criterion):
    response = expert_client.post(_label_url(trace, criterion), {"verdict": "fail", "critique": "Wrong count"}, **HTMX)
    assert response.status_code == 200
    label = Label.objects.get(trace=trace, criterion=criterion)
    assert (label.verdict, label.critique, label.author.username) == ("fail", "Wrong count", "expert")
    assert [(c.verdict, c.critique) for c in label.changes.all()] == [("fail", "Wrong count")]
    trace.refresh_from_db()
    assert trace.reviewed_at is not None
    html = response.content.decode()
    assert 'id="verdict-' in html and 'data-verdict="fail"' in html and "Saved" in html
    assert 'id="queue-progress" class="queue-progress" hx-swap-oob="true"' in html
    assert "<strong>1</strong> of 1 reviewed" in html


def test_critique_autosave_keeps_the_verdict_and_coalesces_history(expert_client, trace, criterion):
    url = _label_url(trace, criterion)
    expert_client.post(url, {"verdict": "pass"}, **HTMX)
    expert_client.post(url, {"critique": "Fine"}, **HTMX)
    expert_client.post(url, {"critique": "Fine, cites the source"}, **HTMX)
    label = Label.objects.get(trace=trace, criterion=criterion)
    assert (label.verdict, label.critique) == ("pass", "Fine, cites the source")
    # One state: pass with its final critique; the keystroke-level autosaves merged into it.
    assert [(c.verdict, c.critique) for c in label.changes.all()] == [("pass", "Fine, cites the source")]


def test_changing_the_verdict_adds_a_history_row(expert_client, trace, criterion):
    url = _label_url(trace, criterion)
    expert_client.post(url, {"verdict": "pass", "critique": "ok"}, **HTMX)
    response = expert_client.post(url, {"verdict": "fail", "critique": "ok"}, **HTMX)
    label = Label.objects.get(trace=trace, criterion=criterion)
    assert label.verdict == "fail"
    assert [c.verdict for c in label.changes.all()] == ["fail", "pass"]
    assert "History (2)" in response.content.decode()
    page = expert_client.get(reverse("trace_detail", args=["acme", trace.external_id])).content.decode()
    assert "History (2)" in page


def test_critique_edits_after_the_coalescing_window_add_history(expert, trace, criterion):
    label = label_submit(trace=trace, criterion=criterion, verdict="fail", critique="first", user=expert)
    LabelChange.objects.filter(label=label).update(changed_at=timezone.now() - timedelta(minutes=5))
    label_submit(trace=trace, criterion=criterion, verdict="fail", critique="second", user=expert)
    assert [c.critique for c in label.changes.all()] == ["second", "first"]


def test_saving_the_same_state_twice_writes_no_history(expert, trace, criterion):
    label_submit(trace=trace, criterion=criterion, verdict="pass", critique="x", user=expert)
    label_submit(trace=trace, criterion=criterion, verdict="pass", critique="x", user=expert)
    assert LabelChange.objects.count() == 1


def test_critique_before_a_verdict_is_not_saved_and_says_so(expert_client, trace, criterion):
    response = expert_client.post(_label_url(trace, criterion), {"critique": "Hallucinated a date"}, **HTMX)
    assert response.status_code == 200
    assert "Choose pass or fail to save this critique" in response.content.decode()
    assert not Label.objects.exists()
    trace.refresh_from_db()
    assert trace.reviewed_at is None


def test_bad_verdict_is_a_clear_error(expert_client, trace, criterion):
    response = expert_client.post(_label_url(trace, criterion), {"verdict": "maybe"}, **HTMX)
    assert "Select a valid choice" in response.content.decode()
    assert not Label.objects.exists()


def test_label_service_refuses_non_experts_and_foreign_criteria(project, teammate, expert, trace):
    criterion = make_criterion(project=project)
    with pytest.raises(DomainError, match="Only the project's expert"):
        label_submit(trace=trace, criterion=criterion, verdict="pass", critique="", user=teammate)
    other = make_project(slug="other", expert=expert)
    foreign = make_criterion(project=other, name="foreign")
    with pytest.raises(DomainError, match="belongs to another project"):
        label_submit(trace=trace, criterion=foreign, verdict="pass", critique="", user=expert)


def test_first_review_time_is_kept_on_later_labels(expert, trace, criterion, project):
    label_submit(trace=trace, criterion=criterion, verdict="pass", critique="", user=expert)
    first = Trace.objects.get(pk=trace.pk).reviewed_at
    second = make_criterion(project=project, name="tone")
    label_submit(trace=trace, criterion=second, verdict="fail", critique="", user=expert)
    assert Trace.objects.get(pk=trace.pk).reviewed_at == first


def test_teammate_gets_403_when_labelling(teammate_client, trace, criterion):
    response = teammate_client.post(_label_url(trace, criterion), {"verdict": "pass"}, **HTMX)
    assert response.status_code == 403
    assert not Label.objects.exists()


def test_teammate_gets_403_when_marking_reviewed(teammate_client, trace):
    response = teammate_client.post(reverse("trace_mark_reviewed", args=["acme", trace.pk]))
    assert response.status_code == 403
    trace.refresh_from_db()
    assert trace.reviewed_at is None


def test_label_for_a_criterion_of_another_project_is_404(expert_client, expert, trace):
    foreign = make_criterion(project=make_project(slug="other", expert=expert))
    assert expert_client.post(_label_url(trace, foreign), {"verdict": "pass"}, **HTMX).status_code == 404


def test_mark_reviewed_sets_reviewed_at_and_goes_to_the_next_trace(expert_client, project, trace):
    other = make_trace(project=project, external_id="t-2")
    response = expert_client.post(reverse("trace_mark_reviewed", args=["acme", trace.pk]) + "?order=oldest")
    trace.refresh_from_db()
    assert trace.reviewed_at is not None
    assert response.status_code == 302
    assert response["Location"] == reverse("trace_detail", args=["acme", other.external_id]) + "?order=oldest"


def test_mark_reviewed_service_is_expert_only(teammate, trace):
    with pytest.raises(DomainError, match="expert"):
        trace_mark_reviewed(trace=trace, user=teammate)


# Notes -------------------------------------------------------------------------------------------------------


def test_any_member_adds_a_note_and_only_the_experts_note_marks_reviewed(teammate_client, expert_client, trace):
    response = teammate_client.post(reverse("note_add", args=["acme", trace.pk]), {"text": "Too long"}, **HTMX)
    assert response.status_code == 200
    assert "Too long" in response.content.decode()
    assert "· edited" not in response.content.decode()
    trace.refresh_from_db()
    assert trace.reviewed_at is None
    expert_client.post(reverse("note_add", args=["acme", trace.pk]), {"text": "Invents a policy"}, **HTMX)
    trace.refresh_from_db()
    assert trace.reviewed_at is not None
    assert list(Note.objects.order_by("id").values_list("author__username", "text")) == [
        ("teammate", "Too long"),
        ("expert", "Invents a policy"),
    ]


def test_empty_note_is_rejected_with_a_message(expert_client, trace):
    response = expert_client.post(reverse("note_add", args=["acme", trace.pk]), {"text": "   "}, **HTMX)
    assert "A note cannot be empty." in response.content.decode()
    assert not Note.objects.exists()


def test_author_edits_and_deletes_own_note(teammate_client, teammate, trace):
    note = make_note(trace=trace, author=teammate, text="draft")
    response = teammate_client.post(reverse("note_edit", args=["acme", note.pk]), {"text": "final"}, **HTMX)
    assert response.status_code == 200
    note.refresh_from_db()
    assert note.text == "final"
    assert note.updated_at > note.created_at
    Note.objects.filter(pk=note.pk).update(updated_at=note.created_at + timedelta(minutes=2))
    assert "· edited" in teammate_client.get(reverse("trace_detail", args=["acme", "t-1"])).content.decode()
    response = teammate_client.post(reverse("note_delete", args=["acme", note.pk]), **HTMX)
    assert response.status_code == 200
    assert not Note.objects.filter(pk=note.pk).exists()


def test_others_notes_are_read_only(expert_client, teammate, trace):
    note = make_note(trace=trace, author=teammate, text="mine")
    assert expert_client.post(reverse("note_edit", args=["acme", note.pk]), {"text": "x"}).status_code == 403
    assert expert_client.post(reverse("note_delete", args=["acme", note.pk])).status_code == 403
    note.refresh_from_db()
    assert note.text == "mine"


def test_note_services_refuse_non_authors(expert, teammate, trace):
    note = note_create(trace=trace, author=teammate, text="  spaced  ")
    assert note.text == "spaced"
    with pytest.raises(DomainError, match="Only the author can edit"):
        note_update(note=note, user=expert, text="x")
    with pytest.raises(DomainError, match="Only the author can delete"):
        note_delete(note=note, user=expert)


def test_non_htmx_post_redirects_back_to_the_trace(expert_client, trace):
    response = expert_client.post(reverse("note_add", args=["acme", trace.pk]) + "?order=newest", {"text": "plain"})
    assert response.status_code == 302
    assert response["Location"] == reverse("trace_detail", args=["acme", "t-1"]) + "?order=newest"


# Access: outsiders get 404 everywhere, CSRF is enforced ------------------------------------------------------


def _every_view(trace, criterion, note) -> list[tuple[str, str]]:
    return [
        ("get", reverse("review_queue", args=["acme"])),
        ("post", reverse("review_queue", args=["acme"])),
        ("get", reverse("trace_list", args=["acme"])),
        ("get", reverse("trace_detail", args=["acme", trace.external_id])),
        ("get", reverse("trace_next", args=["acme", trace.pk])),
        ("get", reverse("trace_previous", args=["acme", trace.pk])),
        ("post", reverse("trace_mark_reviewed", args=["acme", trace.pk])),
        ("post", reverse("label_save", args=["acme", trace.pk, criterion.pk])),
        ("post", reverse("note_add", args=["acme", trace.pk])),
        ("post", reverse("note_edit", args=["acme", note.pk])),
        ("post", reverse("note_delete", args=["acme", note.pk])),
    ]


def test_outsider_gets_404_on_every_review_view(outsider_client, expert, trace, criterion):
    note = make_note(trace=trace, author=expert)
    for method, url in _every_view(trace, criterion, note):
        response = getattr(outsider_client, method)(url, {"verdict": "pass", "text": "x"} if method == "post" else {})
        assert response.status_code == 404, (method, url, response.status_code)
    assert Note.objects.count() == 1 and not Label.objects.exists()


def test_anonymous_user_is_sent_to_login_on_every_review_view(client, expert, trace, criterion):
    note = make_note(trace=trace, author=expert)
    for method, url in _every_view(trace, criterion, note):
        response = getattr(client, method)(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), url


def test_ids_from_another_project_are_404_even_for_members(expert_client, expert, project):
    other = make_project(slug="other", expert=make_user("boss"))
    foreign_trace = make_trace(project=other, external_id="x")
    foreign_note = make_note(trace=foreign_trace, author=expert)
    assert expert_client.get(reverse("trace_next", args=["acme", foreign_trace.pk])).status_code == 404
    assert expert_client.post(reverse("note_add", args=["acme", foreign_trace.pk]), {"text": "x"}).status_code == 404
    assert expert_client.post(reverse("note_edit", args=["acme", foreign_note.pk]), {"text": "x"}).status_code == 404


def test_htmx_posts_without_the_csrf_token_are_refused(expert, trace, criterion):
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    response = client.post(_label_url(trace, criterion), {"verdict": "pass"}, **HTMX)
    assert response.status_code == 403
    assert not Label.objects.exists()
    response = client.post(reverse("note_add", args=["acme", trace.pk]), {"text": "x"}, **HTMX)
    assert response.status_code == 403
    assert not Note.objects.exists()


def test_htmx_posts_with_the_token_from_the_page_header_succeed(expert, trace, criterion):
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    page = client.get(reverse("trace_detail", args=["acme", trace.external_id])).content.decode()
    token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    response = client.post(_label_url(trace, criterion), {"verdict": "pass"}, HTTP_X_CSRFTOKEN=token, **HTMX)
    assert response.status_code == 200
    assert Label.objects.get().verdict == "pass"
