"""Blind re-review of disagreements: the services' rules, who may post, and the per-criterion count of labels that
moved toward the judge. (The judge run that makes such a session is tested in tests/judges.)"""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import BlindRelabel, Label, ReviewSession
from annotation.queue import QueueParams
from annotation.relabels import relabel_blind, relabel_decide
from annotation.selectors import relabel_drift
from annotation.services import DomainError
from annotation.sessions import review_session_store
from tests.factories import make_criterion, make_label, make_note, make_trace

pytestmark = pytest.mark.django_db


def _session(project, expert, criterion, items, *, by_name: bool = False) -> ReviewSession:
    """A disagreement session as judges.review_sessions stores it: (trace, expert verdict, judge verdict) each."""
    stored = []
    for trace, judge_verdict in items:
        reason = {"judge": "j v1", "criterion": criterion.name, "judge_verdict": judge_verdict, "reasoning": "r"}
        if not by_name:
            reason["criterion_id"] = criterion.pk
        stored.append((trace.pk, reason))
    return review_session_store(
        project=project, created_by=expert, strategy=ReviewSession.Strategy.DISAGREEMENTS, items=stored
    )


def _labelled(project, criterion, verdict: str, critique: str = "as labelled first"):
    trace = make_trace(project=project)
    make_label(trace=trace, criterion=criterion, verdict=verdict, critique=critique)
    return trace


def _relabel(item, expert, blind: str, keep: str, reason: str = "read again") -> BlindRelabel:
    relabel = relabel_blind(item=item, verdict=blind, critique=f"blind {blind}", user=expert)
    return relabel_decide(relabel=relabel, keep=keep, reason=reason, user=expert)


def test_only_the_expert_labels_blind_and_decides(project, expert, teammate):
    criterion = make_criterion(project=project, name="tone")
    session = _session(project, expert, criterion, [(_labelled(project, criterion, "fail"), "pass")])
    item = session.items.get()
    with pytest.raises(DomainError, match="Only the project's expert"):
        relabel_blind(item=item, verdict="pass", critique="", user=teammate)
    relabel = relabel_blind(item=item, verdict="pass", critique="", user=expert)
    with pytest.raises(DomainError, match="Only the project's expert"):
        relabel_decide(relabel=relabel, keep="blind", reason="because", user=teammate)
    assert BlindRelabel.objects.get().decided_at is None


def test_a_second_blind_label_or_decision_is_refused_and_changes_nothing(project, expert):
    criterion = make_criterion(project=project, name="tone")
    session = _session(project, expert, criterion, [(_labelled(project, criterion, "fail"), "pass")])
    item = session.items.get()
    relabel = relabel_blind(item=item, verdict="pass", critique="first", user=expert)
    with pytest.raises(DomainError, match="already labelled again blind"):
        relabel_blind(item=item, verdict="fail", critique="second", user=expert)
    relabel_decide(relabel=relabel, keep="earlier", reason="first reading holds", user=expert)
    with pytest.raises(DomainError, match="already decided .*kept the earlier label"):
        relabel_decide(relabel=relabel, keep="blind", reason="changed my mind", user=expert)
    relabel.refresh_from_db()
    assert (relabel.blind_critique, relabel.kept, relabel.final_verdict) == ("first", "earlier", "fail")


def test_bad_input_is_refused_naming_the_field(project, expert):
    criterion = make_criterion(project=project, name="tone")
    unlabelled = make_trace(project=project)
    session = _session(project, expert, criterion, [(unlabelled, "fail")])
    item = session.items.get()
    with pytest.raises(DomainError, match="Verdict: choose pass or fail"):
        relabel_blind(item=item, verdict="maybe", critique="", user=expert)
    relabel = relabel_blind(item=item, verdict="pass", critique="", user=expert)
    assert relabel.earlier_verdict == ""
    with pytest.raises(DomainError, match="Keep: choose the blind label"):
        relabel_decide(relabel=relabel, keep="both", reason="", user=expert)
    with pytest.raises(DomainError, match="Keep: the trace had no earlier label"):
        relabel_decide(relabel=relabel, keep="earlier", reason="", user=expert)
    # No earlier label: no reason needed, and a label that was never on the other side did not move.
    decided = relabel_decide(relabel=relabel, keep="blind", reason="", user=expert)
    assert decided.moved_toward_judge is False
    assert Label.objects.get(trace=unlabelled).verdict == "pass"


def test_a_session_of_another_strategy_does_not_relabel_blind(project, expert):
    trace = make_trace(project=project)
    session = review_session_store(
        project=project, created_by=expert, strategy=ReviewSession.Strategy.RANDOM, items=[(trace.pk, {})]
    )
    with pytest.raises(DomainError, match="does not re-label blind"):
        relabel_blind(item=session.items.get(), verdict="pass", critique="", user=expert)


def test_sessions_made_before_blind_review_find_their_criterion_by_name(project, expert):
    criterion = make_criterion(project=project, name="tone")
    session = _session(project, expert, criterion, [(_labelled(project, criterion, "fail"), "pass")], by_name=True)
    relabel = relabel_blind(item=session.items.get(), verdict="fail", critique="", user=expert)
    assert relabel.criterion == criterion and relabel.earlier_verdict == "fail"


def test_moves_toward_the_judge_are_counted_per_criterion_and_per_session(project, expert):
    tone = make_criterion(project=project, name="tone", position=1)
    facts = make_criterion(project=project, name="facts", position=2)
    tone_traces = [_labelled(project, tone, "fail") for _ in range(4)]
    first = _session(project, expert, tone, [(t, "pass") for t in tone_traces])
    items = list(first.items.order_by("position"))
    _relabel(items[0], expert, blind="pass", keep="blind")  # moved toward the judge
    _relabel(items[1], expert, blind="pass", keep="earlier")  # sided with the judge blind, then went back
    _relabel(items[2], expert, blind="fail", keep="blind")  # held
    relabel_blind(item=items[3], verdict="pass", critique="", user=expert)  # not decided: not counted
    facts_trace = _labelled(project, facts, "pass")
    second = _session(project, expert, facts, [(facts_trace, "fail")])
    _relabel(second.items.get(), expert, blind="fail", keep="blind")

    drift = relabel_drift(project=project)
    assert [(d.criterion_name, d.decided, d.moved, d.blind_agreed) for d in drift] == [
        ("tone", 3, 1, 2),
        ("facts", 1, 1, 1),
    ]
    assert drift[0].share == pytest.approx(1 / 3)
    assert [(d.criterion_name, d.decided) for d in relabel_drift(project=project, session=second)] == [("facts", 1)]
    # The labels are what was kept: the ground truth.
    assert [Label.objects.get(trace=t, criterion=tone).verdict for t in tone_traces] == ["pass", "fail", "fail", "fail"]


def test_outsiders_get_404_and_teammates_403_on_the_relabel_posts(
    project, expert, expert_client, teammate_client, outsider_client
):
    criterion = make_criterion(project=project, name="tone")
    trace = _labelled(project, criterion, "fail")
    session = _session(project, expert, criterion, [(trace, "pass")])
    qs = QueueParams(session=session.pk).querystring
    blind = reverse("relabel_blind", args=[project.slug, trace.pk]) + qs
    decide = reverse("relabel_decide", args=[project.slug, trace.pk]) + qs
    for url in (blind, decide):
        assert outsider_client.post(url, {"verdict": "pass"}).status_code == 404
        assert teammate_client.post(url, {"verdict": "pass"}).status_code == 403
    other = make_trace(project=project)
    assert expert_client.post(reverse("relabel_blind", args=[project.slug, other.pk]) + qs).status_code == 404
    assert expert_client.post(reverse("relabel_blind", args=[project.slug, trace.pk])).status_code == 404
    assert not BlindRelabel.objects.exists()
    # Deciding before the blind label says what to do first.
    response = expert_client.post(decide, {"keep": "blind"}, follow=True)
    assert "Label the trace blind first" in response.content.decode()


def test_the_blind_step_hides_every_label_note_and_panel_of_the_trace(project, expert, expert_client, teammate_client):
    criterion = make_criterion(project=project, name="tone")
    other = make_criterion(project=project, name="facts")
    trace = _labelled(project, criterion, "fail", critique="A curt reply with no greeting at all.")
    make_label(trace=trace, criterion=other, verdict="fail", critique="Claims 94 reactors; there are 92.")
    make_note(trace=trace, author=expert, text="Curt, like the March replies")
    session = _session(project, expert, criterion, [(trace, "pass")])
    url = reverse("trace_detail", args=[project.slug, trace.external_id]) + QueueParams(session=session.pk).querystring
    for client in (expert_client, teammate_client):
        page = client.get(url).content.decode()
        assert 'id="relabel-blind"' in page
        assert "A curt reply" not in page and "94 reactors" not in page and "March replies" not in page
        assert 'id="notes"' not in page and "golden-panel" not in page and "mark-reviewed" not in page
    assert "relabel-form" in expert_client.get(url).content.decode()
    assert "relabel-form" not in page  # the teammate's: only the expert labels
