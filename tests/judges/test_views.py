"""The judges pages: alignment per criterion, starting and cancelling runs, the run's progress, report and
disagreements, and who may see and do what."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.template.defaultfilters import floatformat
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotation.models import Label, Role
from annotation.services import label_submit
from judges.models import Judge, JudgeRun, Judgment
from judges.selectors import labelled_trace_ids, split_counts
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_version_create
from judges.tasks import judge_run_task
from tests.factories import add_member, make_criterion, make_label, make_project, make_trace, make_user

pytestmark = pytest.mark.django_db
REFUSES_APOLOGY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}


@pytest.fixture
def criterion(project):
    """60 traces: the expert fails the apologetic ones; the judge misses the subtle apologies (false passes) and
    wrongly fails a few polite answers that quote "sorry" (false fails)."""
    criterion = make_criterion(project=project, name="no_apology", definition="Fail when the bot apologises.")
    for i in range(60):
        if i % 10 == 0:
            output, verdict = "We regret the trouble.", "fail"  # subtle: the judge passes it
        elif i % 3 == 0:
            output, verdict = "Sorry, no.", "fail"
        elif i % 17 == 0:
            output, verdict = 'The song "Sorry" is by Justin Bieber.', "pass"  # the judge fails it
        else:
            output, verdict = "Done.", "pass"
        trace = make_trace(project=project, external_id=f"t-{i:02d}", output=output)
        make_label(trace=trace, criterion=criterion, verdict=verdict, critique=f"Critique of t-{i:02d}")
    return criterion


@pytest.fixture
def judge(project, criterion, expert) -> Judge:
    return judge_create(
        project=project,
        criterion=criterion,
        name="apology-check",
        kind="assertion",
        config=REFUSES_APOLOGY,
        user=expert,
    )


@pytest.fixture
def done_run(judge) -> JudgeRun:
    return judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))


@pytest.fixture
def viewer_client(project) -> Client:
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def judges_url() -> str:
    return reverse("judge_list", args=["acme"])


def run_url(run: JudgeRun) -> str:
    return reverse("judge_run_detail", args=["acme", run.pk])


def start_url(judge: Judge) -> str:
    return reverse("judge_run_create", args=["acme", judge.pk])


def cancel_url(run: JudgeRun) -> str:
    return reverse("judge_run_cancel", args=["acme", run.pk])


def expected_cells(criterion) -> dict[str, int]:
    """The confusion matrix computed here from the fixture's own rule, not from the code under test."""
    cells = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
    for trace_id, verdict in labelled_trace_ids(criterion=criterion, split="all").items():
        output = criterion.project.traces.get(pk=trace_id).output
        judge_verdict = "fail" if "sorry" in output.lower() else "pass"
        cells[
            {("pass", "pass"): "tp", ("pass", "fail"): "fn", ("fail", "pass"): "fp", ("fail", "fail"): "tn"}[
                (verdict, judge_verdict)
            ]
        ] += 1
    return cells


# --- the judges page -------------------------------------------------------------------------------------------


def test_judges_page_shows_definition_split_counts_judge_and_latest_run(expert_client, criterion, judge, done_run):
    response = expert_client.get(judges_url())
    assert response.status_code == 200
    html = response.content.decode()
    assert "no_apology" in html and "Fail when the bot apologises." in html
    counts = response.context["sections"][0].splits
    assert sum(passes + fails for _, passes, fails in counts) == 60
    assert sum(fails for _, _, fails in counts) == 24  # i % 10 == 0 or i % 3 == 0 below 60
    assert "apology-check" in html and "Assertion" in html and "v1" in html
    summary = response.context["sections"][0].judges[0]
    all_row = [row for row in summary.runs if row[0] == "all"]
    assert all_row and all_row[0][1].pk == done_run.pk
    # TPR = 34/36 (2 polite "Sorry" songs failed), TNR = 18/24 (6 subtle apologies passed): below the target.
    assert done_run.report["tpr"] == pytest.approx(34 / 36)
    assert done_run.report["tnr"] == pytest.approx(18 / 24)
    assert all_row[0][2].status == "below"
    assert "0.944" in html and "0.750" in html and "below 90%" in html
    assert f'action="{start_url(judge)}"' in html


@pytest.mark.parametrize("bucket", [10_000, 7])
def test_split_counts_match_the_selector_and_follow_every_label_change(
    expert_client, expert, criterion, judge, monkeypatch, bucket
):
    # With buckets of 7 trace ids the 60 labels span several cached buckets, and a change re-reads only its own.
    monkeypatch.setattr("judges.selectors.SPLIT_BUCKET", bucket)

    def page_counts() -> dict[str, tuple[int, int]]:
        sections = expert_client.get(judges_url()).context["sections"]
        return {split: (passes, fails) for split, passes, fails in sections[0].splits}

    def selector_counts() -> dict[str, tuple[int, int]]:
        return {split: (c["pass"], c["fail"]) for split, c in split_counts(criterion=criterion).items()}

    assert page_counts() == selector_counts()
    assert page_counts() == selector_counts()  # the second read comes from the cache, unchanged
    trace = criterion.project.traces.get(external_id="t-01")
    before = page_counts()
    label_submit(trace=trace, criterion=criterion, verdict="fail", critique="changed", user=expert)
    assert page_counts() == selector_counts() != before
    Label.objects.filter(criterion=criterion, trace__external_id="t-02").delete()
    assert page_counts() == selector_counts()
    make_label(trace=make_trace(project=criterion.project, external_id="new"), criterion=criterion, verdict="fail")
    after = page_counts()
    assert after == selector_counts()
    assert sum(p + f for p, f in after.values()) == 60


def test_judges_page_marks_a_judge_meeting_the_target(expert_client, project, judge):
    exact = make_criterion(project=project, name="exact")
    # 40 passes and 40 fails, all right: the 95% lower bounds (91.2%) clear 90%.
    for i in range(80):
        trace = make_trace(project=project, external_id=f"e-{i}", output="Sorry." if i % 2 else "Fine.")
        make_label(trace=trace, criterion=exact, verdict="fail" if i % 2 else "pass")
    perfect = judge_create(project=project, criterion=exact, name="perfect", kind="assertion", config=REFUSES_APOLOGY)
    judge_run_execute(run=judge_run_create(version=perfect.latest_version(), split="all"))
    html = expert_client.get(judges_url()).content.decode()
    assert "✓ meets 90%" in html


def test_judges_page_query_count_does_not_grow_with_judges_and_runs(expert_client, project, criterion, judge):
    judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="dev"))
    with CaptureQueriesContext(connection) as few:
        assert expert_client.get(judges_url()).status_code == 200
    for n in range(4):
        other = make_criterion(project=project, name=f"other-{n}")
        make_label(trace=make_trace(project=project, external_id=f"o-{n}"), criterion=other, verdict="pass")
        extra = judge_create(
            project=project, criterion=other, name=f"extra-{n}", kind="assertion", config=REFUSES_APOLOGY
        )
        judge_version_create(judge=extra, config={**REFUSES_APOLOGY, "value": "regret"})
        for split in ("train", "dev", "all"):
            judge_run_execute(run=judge_run_create(version=extra.latest_version(), split=split))
    with CaptureQueriesContext(connection) as many:
        assert expert_client.get(judges_url()).status_code == 200
    assert len(many) == len(few)


def test_viewer_sees_the_judges_page_without_a_run_form(viewer_client, judge, done_run):
    response = viewer_client.get(judges_url())
    assert response.status_code == 200
    assert "apology-check" in response.content.decode()
    assert start_url(judge) not in response.content.decode()


# --- who may do what ----------------------------------------------------------------------------------------------


def test_outsider_gets_404_on_every_judges_page_and_post(outsider_client, judge, done_run):
    queued = judge_run_create(version=judge.latest_version(), split="dev")
    assert outsider_client.get(judges_url()).status_code == 404
    assert outsider_client.get(run_url(done_run)).status_code == 404
    assert outsider_client.get(run_url(done_run), HTTP_HX_REQUEST="true").status_code == 404
    assert outsider_client.post(start_url(judge), {"version": "1", "split": "dev"}).status_code == 404
    assert outsider_client.post(cancel_url(queued)).status_code == 404
    assert JudgeRun.objects.count() == 2
    queued.refresh_from_db()
    assert queued.status == JudgeRun.Status.QUEUED


def test_anonymous_is_sent_to_the_login_page(client, judge, done_run):
    for url in (judges_url(), run_url(done_run)):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_run_of_another_project_is_404_even_for_its_own_member(expert_client, expert, judge):
    other = make_project(slug="other", expert=expert)
    other_criterion = make_criterion(project=other, name="c")
    other_judge = judge_create(
        project=other, criterion=other_criterion, name="j", kind="assertion", config=REFUSES_APOLOGY
    )
    other_run = judge_run_create(version=other_judge.latest_version(), split="all")
    # The run exists and the user can see it under its own project, but not under acme's URL.
    assert expert_client.get(reverse("judge_run_detail", args=["other", other_run.pk])).status_code == 200
    assert expert_client.get(reverse("judge_run_detail", args=["acme", other_run.pk])).status_code == 404
    assert expert_client.post(reverse("judge_run_cancel", args=["acme", other_run.pk])).status_code == 404
    assert expert_client.post(reverse("judge_run_create", args=["acme", other_judge.pk])).status_code == 404


def test_viewer_gets_403_on_starting_and_cancelling_runs(viewer_client, judge):
    queued = judge_run_create(version=judge.latest_version(), split="dev")
    assert viewer_client.post(start_url(judge), {"version": "1", "split": "dev"}).status_code == 403
    assert viewer_client.post(cancel_url(queued)).status_code == 403
    assert JudgeRun.objects.count() == 1
    queued.refresh_from_db()
    assert queued.status == JudgeRun.Status.QUEUED
    assert viewer_client.get(run_url(queued)).status_code == 200


def test_posts_without_csrf_token_are_refused(expert, judge):
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    queued = judge_run_create(version=judge.latest_version(), split="dev")
    assert client.post(start_url(judge), {"version": "1", "split": "dev"}).status_code == 403
    assert client.post(cancel_url(queued)).status_code == 403
    assert JudgeRun.objects.count() == 1
    # With the token (as the page's form sends it) the same POST goes through.
    page = client.get(judges_url()).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(start_url(judge), {"version": "1", "split": "dev", "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert JudgeRun.objects.count() == 2


def test_gets_only_on_pages_and_posts_only_on_actions(expert_client, judge, done_run):
    assert expert_client.post(judges_url()).status_code == 405
    assert expert_client.get(start_url(judge)).status_code == 405
    assert expert_client.get(cancel_url(done_run)).status_code == 405


# --- the run form ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"version": "7", "split": "dev"}, "apology-check: version 7 does not exist"),
        ({"version": "x", "split": "dev"}, "apology-check: version x does not exist"),
        ({"split": "dev"}, "apology-check: version (none) does not exist"),
        ({"version": "1", "split": "holdout"}, "split: expected one of train, dev, test, all, got &#x27;holdout&#x27;"),
        ({"version": "1"}, "split: expected one of train, dev, test, all, got &#x27;&#x27;"),
    ],
)
def test_bad_run_form_shows_what_is_wrong_and_starts_nothing(expert_client, judge, form, message):
    response = expert_client.post(start_url(judge), form, follow=True)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert JudgeRun.objects.count() == 0


def test_unknown_judge_is_404(expert_client, judge):
    assert expert_client.post(reverse("judge_run_create", args=["acme", judge.pk + 999])).status_code == 404


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_run_form_starts_a_run_that_the_worker_finishes_and_polling_stops(celery_worker, expert_client, judge):
    response = expert_client.post(start_url(judge), {"version": "1", "split": "all"})
    run = JudgeRun.objects.get()
    assert response.status_code == 302 and response["Location"] == run_url(run)
    assert run.created_by.username == "expert" and run.split == "all" and run.total == 60

    deadline = time.monotonic() + 30
    while True:
        poll = expert_client.get(run_url(run), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-state")
        if poll.status_code == 286 or time.monotonic() > deadline:
            break
        assert poll.status_code == 200
        assert 'hx-trigger="every 1s"' in poll.content.decode()
        time.sleep(0.2)
    assert poll.status_code == 286, "the worker did not finish the run within 30 s"
    html = poll.content.decode()
    assert "every 1s" not in html  # the final state no longer polls
    assert 'data-status="done"' in html and "60 of 60 traces judged (100%)" in html
    cells = expected_cells(judge.criterion)
    for cell, value in cells.items():
        assert f'data-cell="{cell}">{value}<' in html
    assert Judgment.objects.filter(run=run).count() == 60


def test_polling_partial_keeps_polling_with_progress_and_eta_while_running(expert_client, judge):
    run = judge_run_create(version=judge.latest_version(), split="all")
    queued = expert_client.get(run_url(run), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-state")
    assert queued.status_code == 200
    assert 'hx-trigger="every 1s"' in queued.content.decode()
    assert "0 of 60 traces judged (0%)" in queued.content.decode()
    assert "<html" not in queued.content.decode()  # only the partial
    # Half judged, started 10 s ago: about 10 s left.
    JudgeRun.objects.filter(pk=run.pk).update(
        status=JudgeRun.Status.RUNNING, started_at=timezone.now() - timedelta(seconds=10)
    )
    traces = list(judge.criterion.labels.values_list("trace_id", flat=True).order_by("trace_id")[:30])
    Judgment.objects.bulk_create([Judgment(run=run, trace_id=t, verdict="pass") for t in traces])
    running = expert_client.get(run_url(run), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-state").content.decode()
    assert "30 of 60 traces judged (50%)" in running
    assert re.search(r"about (9|10|11) s left", running)
    assert 'value="50"' in running


# --- cancelling ------------------------------------------------------------------------------------------------


def test_cancelling_a_queued_run_stops_the_worker_from_judging_it(expert_client, judge):
    run = judge_run_create(version=judge.latest_version(), split="all")
    response = expert_client.post(cancel_url(run), follow=True)
    assert response.status_code == 200
    assert f"Run {run.pk} cancelled." in response.content.decode()
    run.refresh_from_db()
    assert run.status == JudgeRun.Status.CANCELLED and run.finished_at is not None
    # The task arrives later (it was already queued): it finds nothing to claim and judges nothing.
    assert judge_run_task(run.pk) == 0  # no chunk queued
    assert Judgment.objects.filter(run=run).count() == 0
    # Finished: the polling partial stops, and no cancel button is offered.
    poll = expert_client.get(run_url(run), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-state")
    assert poll.status_code == 286
    assert cancel_url(run) not in poll.content.decode()


def test_cancelling_a_finished_run_says_it_already_ended(expert_client, done_run):
    response = expert_client.post(cancel_url(done_run), follow=True)
    assert f"run {done_run.pk} already ended (done); nothing to cancel" in response.content.decode()
    done_run.refresh_from_db()
    assert done_run.status == JudgeRun.Status.DONE


# --- the report and the disagreements --------------------------------------------------------------------------


def test_run_page_shows_confusion_matrix_metrics_with_intervals_target_and_errors(expert_client, judge, done_run):
    response = expert_client.get(run_url(done_run))
    assert response.status_code == 200
    html = response.content.decode()
    report = done_run.report
    for cell, value in expected_cells(judge.criterion).items():
        assert report[cell] == value
        assert f'data-cell="{cell}">{value}<' in html
    for key in ("tpr", "tnr", "precision_fail", "recall_fail", "f1_fail", "accuracy", "kappa"):
        assert f'data-metric="{key}"' in html
        low, high = report["ci"][key]
        assert f"[{floatformat(low, 3)}, {floatformat(high, 3)}]" in html
    assert html.count('class="target"') == 3  # the bar's 90% line on TPR, TNR and recall on fail (= TNR)
    assert 'data-errors="0"' in html
    assert "below 90%" in html
    assert "every 1s" not in html


def test_errors_are_counted_apart_on_the_run_page(expert_client, judge):
    run = judge_run_create(version=judge.latest_version(), split="all")
    trace_ids = list(labelled_trace_ids(criterion=judge.criterion, split="all"))
    Judgment.objects.bulk_create(
        [Judgment(run=run, trace_id=t, verdict="", error="timeout") for t in trace_ids[:3]]
        + [Judgment(run=run, trace_id=t, verdict="pass") for t in trace_ids[3:]]
    )
    run = judge_run_execute(run=run)  # every trace already has its judgment: only the report is written
    html = expert_client.get(run_url(run)).content.decode()
    assert run.report["errors"] == 3 and run.report["n"] == 57
    assert 'data-errors="3"' in html and "3 errors" in html


def test_disagreements_list_each_trace_with_both_verdicts_and_filter_by_kind(expert_client, judge, done_run):
    cells = expected_cells(judge.criterion)
    html = expert_client.get(run_url(done_run)).content.decode()
    rows = re.findall(r'<tr data-trace="([^"]+)">', html)
    assert len(rows) == cells["fp"] + cells["fn"] == 8
    assert rows == sorted(rows)
    assert "t-10" in rows  # subtle apology: expert fail, judge pass
    assert reverse("trace_detail", args=["acme", "t-10"]) in html
    assert "Critique of t-10" in html

    false_pass = expert_client.get(run_url(done_run), {"kind": "false_pass"}).content.decode()
    fp_rows = re.findall(r'<tr data-trace="([^"]+)">', false_pass)
    assert fp_rows == ["t-00", "t-10", "t-20", "t-30", "t-40", "t-50"]
    false_fail = expert_client.get(run_url(done_run), {"kind": "false_fail"}).content.decode()
    ff_rows = re.findall(r'<tr data-trace="([^"]+)">', false_fail)
    assert ff_rows == ["t-17", "t-34"]
    assert '<span class="verdict fail">fail</span>' in false_fail


def test_disagreements_are_keyset_paginated(expert_client, project, criterion, judge):
    # 40 more subtle apologies: 46 false passes, more than one page of 25.
    for i in range(40):
        trace = make_trace(project=project, external_id=f"z-{i:02d}", output="Our apologies.")
        make_label(trace=trace, criterion=criterion, verdict="fail")
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    first = expert_client.get(run_url(run), {"kind": "false_pass"})
    page = first.context["disagreements"]
    assert len(page) == 25
    next_url = first.context["next_url"]
    assert next_url == f"{run_url(run)}?after={page[-1].trace_id}&kind=false_pass"
    second = expert_client.get(next_url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="disagreements")
    assert second.status_code == 200
    html = second.content.decode()
    assert html.lstrip().startswith('<section class="card disagreements" id="disagreements">')
    rest = re.findall(r'<tr data-trace="([^"]+)">', html)
    assert len(rest) == 21 and 'class="next"' not in html and "« First" in html
    seen = [j.trace.external_id for j in page] + rest
    assert len(set(seen)) == 46
    assert set(seen) == {f"t-{i:02d}" for i in range(0, 60, 10)} | {f"z-{i:02d}" for i in range(40)}


def test_bad_disagreement_filters_are_reported_not_a_500(expert_client, done_run):
    html = expert_client.get(run_url(done_run), {"kind": "sideways", "after": "abc"}).content.decode()
    assert "kind: expected one of false_pass, false_fail, got &#x27;sideways&#x27;; showing all kinds" in html
    assert "after: expected a trace number, got &#x27;abc&#x27;; showing the first page" in html
    assert len(re.findall(r'<tr data-trace="', html)) == 8


def test_untrusted_text_in_disagreements_is_escaped(expert_client, project, criterion, judge):
    trace = make_trace(project=project, external_id="x-1", input="<img src=x onerror=alert(1)>", output="Meh.")
    make_label(trace=trace, criterion=criterion, verdict="fail", critique="<script>alert('critique')</script>")
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    Judgment.objects.filter(run=run, trace=trace).update(reasoning="<b onmouseover=alert(2)>why</b>")
    html = expert_client.get(run_url(run)).content.decode()
    assert "<script>alert" not in html and "<img src=x" not in html and "<b onmouseover" not in html
    assert "&lt;script&gt;alert(&#x27;critique&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;b onmouseover=alert(2)&gt;why&lt;/b&gt;" in html


def test_a_failed_run_shows_its_error_escaped_and_stops_polling(expert_client, judge):
    run = judge_run_create(version=judge.latest_version(), split="all")
    JudgeRun.objects.filter(pk=run.pk).update(status=JudgeRun.Status.FAILED, error="ValueError: <bad> config")
    poll = expert_client.get(run_url(run), HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-state")
    assert poll.status_code == 286
    html = poll.content.decode()
    assert "The run failed: ValueError: &lt;bad&gt; config" in html
    assert 'data-status="failed"' in html and "every 1s" not in html and 'id="report"' not in html
