"""A judge run's disagreements become a review session that walks traces the expert has already reviewed."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import BlindRelabel, Label, ReviewSession, Trace
from annotation.queue import QueueParams, queue_progress
from annotation.relabels import relabel_blind, relabel_decide
from annotation.services import DomainError, label_submit
from judges.review_sessions import disagreement_session_create
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.factories import add_member, make_criterion, make_label, make_trace, make_user

pytestmark = pytest.mark.django_db
# Fails on "sorry" only: the expert also fails "regret", so those are false passes; "Sorry to say, yes" is a pass
# the judge fails (a false fail).
CHECK = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}


@pytest.fixture
def run(project, expert):
    criterion = make_criterion(project=project, name="no_apology")
    outputs = ["Done.", "Sorry, no.", "We regret that.", "Sorry to say, yes."]
    for i in range(40):
        kind = i % 4
        trace = make_trace(project=project, external_id=f"t-{i:02}", output=outputs[kind])
        make_label(trace=trace, criterion=criterion, verdict="fail" if kind in (1, 2) else "pass")
        trace.reviewed_at = trace.created_at
        trace.save(update_fields=["reviewed_at"])
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=CHECK)
    return judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))


def test_a_session_holds_each_disagreement_with_the_judges_verdict_and_reasoning(run, expert):
    session = disagreement_session_create(run=run, created_by=expert)
    items = list(session.items.select_related("trace").order_by("position"))
    assert session.strategy == "disagreements" and session.revisits and session.size == 20
    assert [i.trace.external_id for i in items[:2]] == ["t-02", "t-03"]
    assert items[0].reason["judge_verdict"] == "pass" and items[0].reason["expert_verdict"] == "fail"
    assert items[1].reason == {
        **items[1].reason,
        "judge": "apology v1",
        "criterion": "no_apology",
        "judge_verdict": "fail",
        "expert_verdict": "pass",
    }
    only_false_fails = disagreement_session_create(run=run, created_by=expert, kind="false_fail")
    assert only_false_fails.size == 10 and only_false_fails.params["kind"] == "false_fail"


def test_the_queue_walks_the_session_until_each_item_is_decided(run, project, expert_client):
    session = disagreement_session_create(run=run, created_by=run.created_by or project.expert, size=3)
    params = QueueParams(session=session.pk)
    assert queue_progress(project=project, params=params).reviewed == 0

    queue = reverse("review_queue", args=[project.slug]) + params.querystring
    first = expert_client.get(queue)
    assert first.status_code == 302 and "/traces/t-02/" in first["Location"]
    assert 'id="relabel-blind"' in expert_client.get(first["Location"]).content.decode()

    # Neither "reviewed" nor a label saved the old way completes an item: only a decision after the blind label.
    t02 = session.items.get(position=1).trace
    expert_client.post(reverse("trace_mark_reviewed", args=[project.slug, t02.pk]) + params.querystring)
    criterion = run.version.judge.criterion
    expert_client.post(
        reverse("label_save", args=[project.slug, t02.pk, criterion.pk]) + params.querystring, {"verdict": "fail"}
    )
    assert queue_progress(project=project, params=params).reviewed == 0

    blind = reverse("relabel_blind", args=[project.slug, t02.pk]) + params.querystring
    decide = reverse("relabel_decide", args=[project.slug, t02.pk]) + params.querystring
    expert_client.post(blind, {"verdict": "fail", "critique": "Still an apology by another word, as before."})
    response = expert_client.post(decide, {"keep": "blind"})  # same verdict: no reason needed
    assert "/traces/t-03/" in response["Location"]
    assert queue_progress(project=project, params=params).reviewed == 1
    assert "/traces/t-03/" in expert_client.get(queue)["Location"]

    session.items.filter(position__gt=1).update(revisited_at=session.created_at)
    done = expert_client.get(queue)
    assert done.status_code == 200  # the queue page says the session is done
    detail = expert_client.get(reverse("session_detail", args=[project.slug, session.pk])).content.decode()
    assert "Every trace of this session is revisited." in detail


def test_acting_outside_the_session_does_not_mark_it_revisited(run, project, expert):
    session = disagreement_session_create(run=run, created_by=expert, size=1)
    item = session.items.get()
    label_submit(trace=item.trace, criterion=run.version.judge.criterion, verdict="pass", critique="", user=expert)
    item.refresh_from_db()
    assert item.revisited_at is None


def test_bad_requests_are_refused_with_the_reason(run, project, expert):
    with pytest.raises(DomainError, match="Unknown kind of disagreement “maybe”"):
        disagreement_session_create(run=run, created_by=expert, kind="maybe")
    agreeing = judge_create(
        project=project,
        criterion=run.version.judge.criterion,
        name="never",
        kind="assertion",
        config={**CHECK, "value": "zzz"},
    )
    unfinished = judge_run_create(version=agreeing.latest_version(), split="all")
    with pytest.raises(DomainError, match="only a finished run's disagreements"):
        disagreement_session_create(run=unfinished, created_by=expert)
    assert ReviewSession.objects.count() == 0


def test_the_run_page_offers_the_session_to_those_who_may_create_one(run, project, expert_client, outsider_client):
    url = reverse("judge_disagreement_session", args=[project.slug, run.pk])
    assert outsider_client.post(url).status_code == 404
    viewer = make_user("viewer")
    add_member(project, viewer, role="viewer")
    expert_client.logout()
    expert_client.force_login(viewer)
    assert expert_client.post(url).status_code == 403
    page = expert_client.get(reverse("judge_run_detail", args=[project.slug, run.pk])).content.decode()
    assert "as a session" not in page
    expert_client.force_login(project.expert)
    page = expert_client.get(reverse("judge_run_detail", args=[project.slug, run.pk])).content.decode()
    assert "Review these disagreements as a session" in page
    response = expert_client.post(url, {"kind": "false_pass"})
    session = ReviewSession.objects.get()
    assert response["Location"] == reverse("session_detail", args=[project.slug, session.pk])
    assert session.size == 10


# --- blind re-review: the expert labels again before seeing the earlier label or the judge -----------------------

REASONING = "Polite wording; nothing here reads as an apology to me."
EARLIER_CRITIQUE = "Regret is an apology in all but name; the policy forbids both."


@pytest.fixture
def blind_session(run, expert):
    """A one-item session on t-02 ("We regret that."): the expert failed it, the judge passed it."""
    t02 = Trace.objects.get(external_id="t-02")
    Label.objects.filter(trace=t02).update(critique=EARLIER_CRITIQUE)
    run.judgments.filter(trace=t02).update(reasoning=REASONING)
    return disagreement_session_create(run=run, created_by=expert, size=1)


def _trace_page(client, project, session, external_id: str = "t-02") -> str:
    url = reverse("trace_detail", args=[project.slug, external_id]) + QueueParams(session=session.pk).querystring
    response = client.get(url)
    assert response.status_code == 200
    return response.content.decode()


def _relabel_url(name: str, project, session, trace) -> str:
    return reverse(name, args=[project.slug, trace.pk]) + QueueParams(session=session.pk).querystring


def test_the_blind_page_holds_neither_the_earlier_label_nor_the_judges_verdict_or_reasoning(
    blind_session, project, expert_client
):
    page = _trace_page(expert_client, project, blind_session)
    assert REASONING not in page and "judge-reasoning" not in page
    assert EARLIER_CRITIQUE not in page
    assert 'id="relabel-blind"' in page
    # Nothing says which judge or which way: not its name, not a selected or shown verdict, not the label history.
    assert "apology v1" not in page and "Why this trace is in the session" not in page
    assert "checked" not in page and "is-selected" not in page and 'aria-pressed="true"' not in page
    assert "verdict-badge" not in page and "label-history" not in page
    # The blind form posts the new label; the queue's session rides along.
    assert f"/relabel/blind/?order=random&amp;session={blind_session.pk}" in page


def test_the_session_name_and_page_do_not_tell_which_way_the_items_went(run, project, expert, expert_client):
    session = disagreement_session_create(run=run, created_by=expert, kind="false_fail", size=2)
    assert "false" not in session.name and "blind" in session.name
    detail = expert_client.get(reverse("session_detail", args=[project.slug, session.pk])).content.decode()
    assert "judge fail" not in detail and "expert pass" not in detail


def test_labelling_blind_reveals_the_earlier_label_and_the_judges_reasoning_and_changes_no_label(
    blind_session, project, expert, expert_client
):
    item = blind_session.items.get()
    response = expert_client.post(
        _relabel_url("relabel_blind", project, blind_session, item.trace),
        {"verdict": "pass", "critique": "Regret here is about the delay, not an apology for the answer."},
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("trace_detail", args=[project.slug, "t-02"]) + (
        QueueParams(session=blind_session.pk).querystring
    )
    label = Label.objects.get(trace=item.trace)
    assert (label.verdict, label.critique) == ("fail", EARLIER_CRITIQUE)  # ground truth waits for the decision
    page = _trace_page(expert_client, project, blind_session)
    assert 'id="relabel-reveal"' in page and REASONING in page and EARLIER_CRITIQUE in page and "apology v1" in page
    item.refresh_from_db()
    assert item.revisited_at is None  # done only once decided


def test_keeping_the_blind_label_moves_the_label_toward_the_judge_with_one_history_entry(
    blind_session, project, expert, expert_client
):
    item = blind_session.items.get()
    label = Label.objects.get(trace=item.trace)
    changes_before = label.changes.count()
    expert_client.post(
        _relabel_url("relabel_blind", project, blind_session, item.trace),
        {"verdict": "pass", "critique": "Regret here is about the delay, not an apology for the answer."},
    )
    refused = expert_client.post(_relabel_url("relabel_decide", project, blind_session, item.trace), {"keep": "blind"})
    assert refused.status_code == 302 and Label.objects.get(pk=label.pk).verdict == "fail"
    messages = [str(m) for m in refused.wsgi_request._messages]
    assert any("Reason:" in m and "differs" in m for m in messages)
    done = expert_client.post(
        _relabel_url("relabel_decide", project, blind_session, item.trace),
        {"keep": "blind", "reason": "Read again, the reply regrets a delay: no apology for the content."},
    )
    assert done.status_code == 302
    label.refresh_from_db()
    assert (label.verdict, label.critique) == ("pass", "Regret here is about the delay, not an apology for the answer.")
    assert label.changes.count() == changes_before + 1 and label.changes.first().verdict == "pass"
    relabel = BlindRelabel.objects.get(item=item)
    assert (relabel.earlier_verdict, relabel.blind_verdict, relabel.final_verdict, relabel.judge_verdict) == (
        "fail",
        "pass",
        "pass",
        "pass",
    )
    assert relabel.moved_toward_judge is True and relabel.kept == "blind"
    item.refresh_from_db()
    assert item.revisited_at is not None
    detail = expert_client.get(reverse("session_detail", args=[project.slug, blind_session.pk])).content.decode()
    assert 'id="relabel-drift"' in detail and "1 of 1" in detail


def test_going_back_to_the_earlier_label_changes_nothing_and_is_not_a_move(
    blind_session, project, expert, expert_client
):
    item = blind_session.items.get()
    label = Label.objects.get(trace=item.trace)
    changes_before = list(label.changes.values_list("pk", flat=True))
    expert_client.post(
        _relabel_url("relabel_blind", project, blind_session, item.trace), {"verdict": "pass", "critique": "ok"}
    )
    expert_client.post(
        _relabel_url("relabel_decide", project, blind_session, item.trace),
        {"keep": "earlier", "reason": "My first reading was right: regret is an apology under the policy."},
    )
    label.refresh_from_db()
    assert (label.verdict, label.critique) == ("fail", EARLIER_CRITIQUE)
    assert list(label.changes.values_list("pk", flat=True)) == changes_before
    relabel = BlindRelabel.objects.get(item=item)
    assert relabel.final_verdict == "fail" and relabel.moved_toward_judge is False
    page = _trace_page(expert_client, project, blind_session)
    assert 'id="relabel-decided"' in page and "went back to the earlier label" in page


def test_the_judges_page_shows_in_the_criterions_section_how_often_labels_moved_toward_the_judge(
    run, project, expert, expert_client
):
    criterion = run.version.judge.criterion
    session = disagreement_session_create(run=run, created_by=expert, size=3)
    # Sides with the judge and keeps it; holds the earlier label; sides with the judge blind, then goes back.
    plan = [("judge_verdict", "blind"), ("expert_verdict", "blind"), ("judge_verdict", "earlier")]
    for item, (side, keep) in zip(session.items.order_by("position"), plan, strict=True):
        relabel = relabel_blind(item=item, verdict=item.reason[side], critique="", user=expert)
        relabel_decide(relabel=relabel, keep=keep, reason="read again", user=expert)
    moved = BlindRelabel.objects.filter(moved_toward_judge=True).count()
    assert moved == 1
    page = expert_client.get(reverse("judge_list", args=[project.slug])).content.decode()
    section = page.split(f'id="criterion-{criterion.pk}"', 1)[1]
    assert f'id="relabel-drift-{criterion.pk}" data-moved="1" data-decided="3"' in section
    assert "1 of 3</strong> re-labelled disagreements" in section
