"""The expert's reliability: fatigue (fail rate by position in a sitting) and drift (weekly fail rate on random-queue
first verdicts, labels changed later), on the page and in the REST API (issue 15 §2–3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from annotation.models import LabelChange
from annotation.services import LabelContext, api_token_create, criterion_create, label_submit
from judges.reliability import drift, fatigue
from tests.factories import make_criterion, make_trace

pytestmark = pytest.mark.django_db


def _label(project, criterion, expert, n: int, verdict: str, **context) -> None:
    trace = make_trace(project=project, external_id=f"t-{criterion.pk}-{n}")
    label_submit(
        trace=trace, criterion=criterion, verdict=verdict, critique="", user=expert, context=LabelContext(**context)
    )


def test_fatigue_buckets_first_verdicts_by_position_with_intervals(project, expert):
    criterion = make_criterion(project=project, name="tone")
    # Early in the sitting the expert fails 8 of 20; late (positions 61–80) only 1 of 20.
    for i in range(20):
        _label(project, criterion, expert, i, "fail" if i < 8 else "pass", sitting_position=i + 1, seconds_on_trace=40)
    for i in range(20, 40):
        _label(
            project, criterion, expert, i, "fail" if i == 20 else "pass", sitting_position=41 + i, seconds_on_trace=9
        )
    _label(project, criterion, expert, 99, "fail")  # imported-like: no position, not counted
    rows = fatigue(project=project)
    assert [(row.label, row.n, row.fails, row.median_seconds) for row in rows] == [
        ("1–20", 20, 8, 40.0),
        ("61–80", 20, 1, 9.0),
    ]
    low, high = rows[0].interval
    assert low < 0.4 < high and rows[1].interval[1] < rows[0].interval[1]


def test_a_relabel_is_not_a_second_first_verdict(project, expert):
    criterion = make_criterion(project=project, name="tone")
    trace = make_trace(project=project, external_id="t-1")
    for verdict in ("pass", "fail"):
        label_submit(
            trace=trace,
            criterion=criterion,
            verdict=verdict,
            critique="",
            user=expert,
            context=LabelContext(sitting_position=1, via="random"),
        )
    [row] = fatigue(project=project)
    assert (row.n, row.fails) == (1, 0)
    [item] = drift(project=project)
    assert (item.labels, item.changed_later) == (1, 1)


def test_drift_counts_random_queue_first_verdicts_by_week(project, expert):
    criterion = criterion_create(project=project, name="no_apology", definition="Fail when it apologises.")
    monday = datetime(2026, 11, 2, 10, tzinfo=UTC)
    for i in range(10):
        _label(project, criterion, expert, i, "fail" if i < 2 else "pass", via="random")
    for i in range(10, 20):
        _label(project, criterion, expert, i, "fail" if i < 16 else "pass", via="random")
    _label(project, criterion, expert, 50, "fail", via="session:negative_feedback")  # picked for a reason: left out
    changes = LabelChange.objects.filter(via="random").order_by("id")
    LabelChange.objects.filter(pk__in=[c.pk for c in changes[:10]]).update(changed_at=monday)
    LabelChange.objects.filter(pk__in=[c.pk for c in changes[10:]]).update(changed_at=monday + timedelta(days=7))
    [item] = drift(project=project)
    assert [(row.label, row.n, row.fails) for _, row in item.weeks] == [
        ("2026-11-02", 10, 2),
        ("2026-11-09", 10, 6),
    ]
    assert (item.labels, item.changed_later) == (21, 0)


def test_the_page_and_the_api_show_both(project, expert, expert_client, client):
    criterion = make_criterion(project=project, name="tone")
    _label(project, criterion, expert, 1, "fail", sitting_position=3, seconds_on_trace=12.5, via="random")
    page = expert_client.get(f"/projects/{project.slug}/reliability/").content.decode()
    assert 'data-bucket="1–20"' in page and "Changed later: <strong>0</strong> of 1 label" in page
    assert 'class="chart-svg fatigue-chart"' in page and 'data-metric="fail_rate"' in page

    _, token = api_token_create(project=project, name="notebook")
    body = client.get(f"/api/v1/projects/{project.slug}/reliability", headers={"Authorization": f"Bearer {token}"})
    assert body.status_code == 200
    data = body.json()
    assert data["fatigue"] == [
        {
            "label": "1–20",
            "n": 1,
            "fails": 1,
            "fail_rate": 1.0,
            "fail_rate_ci": data["fatigue"][0]["fail_rate_ci"],
            "median_seconds": 12.5,
            "rereviewed": 0,
            "self_agreement": None,
        }
    ]
    assert data["drift"][0]["criterion"] == "tone" and data["drift"][0]["weeks"][0]["n"] == 1


def test_the_reliability_route_is_in_the_openapi_document(expert_client):
    paths = expert_client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/projects/{slug}/reliability" in paths


def test_a_runs_alignment_report_shows_the_experts_self_agreement_beside_the_bar(project, expert, expert_client):
    from datetime import timedelta

    from django.utils import timezone

    from annotation.models import Label
    from annotation.rereviews import Answer, rereview_submit
    from judges.services import judge_create, judge_run_create, judge_run_execute

    criterion = criterion_create(project=project, name="no_apology", definition="Fail when it apologises.")
    for i in range(6):
        trace = make_trace(project=project, external_id=f"t-{i}", output="Sorry!" if i % 2 else "Done.")
        label_submit(trace=trace, criterion=criterion, verdict="fail" if i % 2 else "pass", critique="", user=expert)
    judge = judge_create(
        project=project,
        criterion=criterion,
        name="apology",
        kind="assertion",
        config={"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False},
    )
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    page = expert_client.get(f"/projects/{project.slug}/judges/runs/{run.pk}/").content.decode()
    assert "self-agreement on this criterion is not measured yet" in page
    Label.objects.update(updated_at=timezone.now() - timedelta(days=8))
    from annotation.models import Trace

    for trace in Trace.objects.filter(project=project).order_by("external_id")[:4]:
        then = Label.objects.get(trace=trace).verdict
        rereview_submit(trace=trace, user=expert, answers={criterion.pk: Answer(then)})
    page = expert_client.get(f"/projects/{project.slug}/judges/runs/{run.pk}/").content.decode()
    assert "self-agreement on “no_apology”: agreement" in page and "over 4 blind re-reviews" in page
