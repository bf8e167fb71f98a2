"""Recalibration after a definition change: a session of the labels made under an earlier definition, those whose
critique or notes mention the changed words first; each is labelled again blind, then decided (issue 15 §2)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import BlindRelabel, Label, ReviewSession
from annotation.queue import QueueParams
from annotation.recalibration import recalibration_session_create
from annotation.relabels import relabel_blind, relabel_decide
from annotation.selectors import relabel_drift
from annotation.services import DomainError, criterion_create, criterion_update, label_submit
from tests.factories import make_note, make_trace

pytestmark = pytest.mark.django_db

OLD = "Fail when it apologises."
NEW = "Fail when it apologises or blames the customer."


@pytest.fixture
def criterion(project, expert):
    return criterion_create(project=project, name="no_apology", definition=OLD, user=expert)


def _label(project, criterion, expert, external_id: str, verdict: str, critique: str):
    trace = make_trace(project=project, external_id=external_id)
    label_submit(trace=trace, criterion=criterion, verdict=verdict, critique=critique, user=expert)
    return trace


def _redefine(criterion, expert, definition: str = NEW):
    return criterion_update(
        criterion=criterion, name=criterion.name, definition=definition, failure_mode=None, user=expert
    )


def test_labels_mentioning_the_changed_words_come_first_then_the_rest(project, criterion, expert):
    plain = _label(project, criterion, expert, "t-plain", "pass", "Polite and correct.")
    noted = _label(project, criterion, expert, "t-noted", "pass", "No apology here.")
    make_note(trace=noted, author=expert, text="It blames the courier, not us")
    both = _label(project, criterion, expert, "t-both", "pass", "Blames the customer for the delay, but no apology.")
    criterion = _redefine(criterion, expert)
    _label(project, criterion, expert, "t-after", "fail", "Blames the customer.")  # made under v2: not offered

    session = recalibration_session_create(criterion=criterion, created_by=expert)
    items = list(session.items.order_by("position").select_related("trace"))
    assert [item.trace.external_id for item in items] == ["t-both", "t-noted", "t-plain"]
    assert items[0].reason == {
        "criterion": "no_apology",
        "criterion_id": criterion.pk,
        "label_version": 1,
        "current_version": 2,
        "mentions": ["blames", "customer"],
    }
    assert items[1].reason["mentions"] == ["blames"] and items[2].reason["mentions"] == []
    assert (session.strategy, session.name) == ("recalibration", "Recalibrate “no_apology” for definition v2")
    assert {both.pk, noted.pk, plain.pk} == {item.trace_id for item in items}


def test_nothing_to_recalibrate_is_said_plainly(project, criterion, expert):
    with pytest.raises(DomainError, match="has not changed since it was made"):
        recalibration_session_create(criterion=criterion, created_by=expert)
    criterion = _redefine(criterion, expert)
    with pytest.raises(DomainError, match="nothing to recalibrate"):
        recalibration_session_create(criterion=criterion, created_by=expert)


def test_a_blind_relabel_without_a_judge_decides_the_label_under_the_new_definition(project, criterion, expert):
    trace = _label(project, criterion, expert, "t-1", "pass", "It says sorry once, which was fine then.")
    criterion = _redefine(criterion, expert, "Fail when it apologises at all.")
    session = recalibration_session_create(criterion=criterion, created_by=expert)
    relabel = relabel_blind(item=session.items.get(), verdict="fail", critique="Apologises once.", user=expert)
    assert relabel.judge_verdict == "" and relabel.earlier_verdict == "pass"
    with pytest.raises(DomainError, match="say why"):
        relabel_decide(relabel=relabel, keep="blind", reason="", user=expert)
    relabel_decide(relabel=relabel, keep="blind", reason="The definition now fails any apology.", user=expert)
    label = Label.objects.get(trace=trace, criterion=criterion)
    assert (label.verdict, label.criterion_version) == ("fail", 2)
    assert BlindRelabel.objects.get().moved_toward_judge is False
    assert relabel_drift(project=project) == []  # no judge to have moved toward


def test_the_criterion_page_offers_it_and_the_session_walks_blind(project, criterion, expert, expert_client):
    trace = _label(project, criterion, expert, "t-1", "pass", "A secret earlier critique.")
    _redefine(criterion, expert)
    page = expert_client.get(reverse("criterion_edit", args=[project.slug, criterion.pk])).content.decode()
    assert "1 label was made under an earlier definition." in page
    assert reverse("criterion_recalibrate", args=[project.slug, criterion.pk]) in page

    response = expert_client.post(reverse("criterion_recalibrate", args=[project.slug, criterion.pk]))
    session = ReviewSession.objects.get(strategy="recalibration")
    assert response["Location"] == reverse("session_detail", args=[project.slug, session.pk])

    params = QueueParams(session=session.pk)
    first = expert_client.get(reverse("review_queue", args=[project.slug]) + params.querystring)
    html = expert_client.get(first["Location"]).content.decode()
    assert 'id="relabel-blind"' in html and "it is now version 2" in html
    assert "A secret earlier critique." not in html  # the earlier label stays hidden until the blind one is locked

    blind = reverse("relabel_blind", args=[project.slug, trace.pk]) + params.querystring
    expert_client.post(blind, {"verdict": "pass", "critique": "Still no apology and no blame."})
    revealed = expert_client.get(first["Location"]).content.decode()
    assert "A secret earlier critique." in revealed and "under version 1; the blind one under version 2" in revealed


def test_the_generic_session_form_refuses_the_strategy_and_says_where_it_starts(project, expert_client):
    response = expert_client.post(
        reverse("session_create", args=[project.slug]), {"strategy": "recalibration", "size": 10}
    )
    assert "A recalibration session starts from a criterion whose definition changed" in response.content.decode()


def test_a_viewer_may_not_start_one(project, criterion, expert, outsider_client):
    _label(project, criterion, expert, "t-1", "pass", "Fine.")
    _redefine(criterion, expert)
    assert outsider_client.post(reverse("criterion_recalibrate", args=[project.slug, criterion.pk])).status_code == 404
