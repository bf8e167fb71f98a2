"""A judge run's disagreements become a review session that walks traces the expert has already reviewed."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import Label, ReviewSession
from annotation.queue import QueueParams, queue_progress
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
    assert only_false_fails.size == 10 and "false fails" in only_false_fails.name


def test_the_queue_walks_the_reviewed_traces_of_the_session_until_each_is_revisited(run, project, expert_client):
    session = disagreement_session_create(run=run, created_by=run.created_by or project.expert, size=3)
    params = QueueParams(session=session.pk)
    assert queue_progress(project=project, params=params).reviewed == 0

    queue = reverse("review_queue", args=[project.slug]) + params.querystring
    first = expert_client.get(queue)
    assert first.status_code == 302 and "/traces/t-02/" in first["Location"]
    page = expert_client.get(first["Location"]).content.decode()
    assert "Why this trace is in the session" in page and "apology v1" in page

    # Keeping the label ("r") and changing it both count as revisited; the queue moves on.
    t02 = session.items.get(position=1).trace
    response = expert_client.post(reverse("trace_mark_reviewed", args=[project.slug, t02.pk]) + params.querystring)
    assert "/traces/t-03/" in response["Location"]
    t03 = session.items.get(position=2).trace
    criterion = run.version.judge.criterion
    expert_client.post(
        reverse("label_save", args=[project.slug, t03.pk, criterion.pk]) + params.querystring, {"verdict": "fail"}
    )
    assert Label.objects.get(trace=t03, criterion=criterion).verdict == "fail"
    assert queue_progress(project=project, params=params).reviewed == 2
    assert "/traces/t-06/" in expert_client.get(queue)["Location"]

    session.items.filter(position=3).update(revisited_at=session.created_at)
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
