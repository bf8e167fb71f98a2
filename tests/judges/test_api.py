"""`GET /api/v1/judge-runs/{id}`: status, progress and the alignment report, for the run's project only."""

from __future__ import annotations

import pytest
from django.test import Client

from annotation.models import Role
from annotation.services import api_token_create
from judges.models import JudgeRun, Judgment
from judges.services import judge_create, judge_run_create, judge_run_execute
from judges.stats import METRICS
from tests.factories import add_member, make_criterion, make_label, make_project, make_trace, make_user

pytestmark = pytest.mark.django_db
REFUSES_APOLOGY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
REPORT_KEYS = {"n", "tp", "fp", "tn", "fn", *METRICS, "ci", "errors", "skipped", "skipped_reasons", "split"}


@pytest.fixture
def judge(project):
    criterion = make_criterion(project=project, name="no_apology")
    for i in range(12):
        trace = make_trace(project=project, external_id=f"t-{i}", output="Sorry." if i % 4 == 0 else "Fine.")
        make_label(trace=trace, criterion=criterion, verdict="fail" if i % 3 == 0 else "pass")
    return judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=REFUSES_APOLOGY)


@pytest.fixture
def done_run(judge) -> JudgeRun:
    return judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="ci")[1]


def url(run_id: int) -> str:
    return f"/api/v1/judge-runs/{run_id}"


def get(client: Client, run_id: int, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get(url(run_id), headers=headers)


def test_token_gets_status_progress_and_the_report_exactly_as_stored(client, done_run, token):
    response = get(client, done_run.pk, token)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == done_run.pk and body["status"] == "done" and body["split"] == "all"
    assert body["project"] == "acme" and body["judge"] == "apology" and body["criterion"] == "no_apology"
    assert body["version"] == 1 and body["total"] == 12 and body["judged"] == 12 and body["progress"] == 1.0
    assert set(body["report"]) == REPORT_KEYS
    assert body["report"] == done_run.report
    # The cells recomputed from the fixture's own rule: outputs 0, 4, 8 say sorry; the expert fails 0, 3, 6, 9.
    expected = {"tp": 0, "fn": 0, "fp": 0, "tn": 0}
    for i in range(12):
        expert, judged = ("fail" if i % 3 == 0 else "pass"), ("fail" if i % 4 == 0 else "pass")
        expected[
            {("pass", "pass"): "tp", ("pass", "fail"): "fn", ("fail", "pass"): "fp", ("fail", "fail"): "tn"}[
                (expert, judged)
            ]
        ] += 1
    assert {key: body["report"][key] for key in expected} == expected
    assert set(body["report"]["ci"]) == set(METRICS)
    assert body["finished_at"] is not None and body["error"] == ""


def test_a_running_run_reports_its_progress_and_no_report(client, judge, token):
    run = judge_run_create(version=judge.latest_version(), split="all")
    trace_ids = list(judge.criterion.labels.values_list("trace_id", flat=True)[:3])
    Judgment.objects.bulk_create([Judgment(run=run, trace_id=t, verdict="pass") for t in trace_ids])
    JudgeRun.objects.filter(pk=run.pk).update(status=JudgeRun.Status.RUNNING)
    body = get(client, run.pk, token).json()
    assert body["status"] == "running" and body["judged"] == 3 and body["total"] == 12
    assert body["progress"] == pytest.approx(0.25)
    assert body["report"] is None and body["finished_at"] is None


def test_member_session_may_read_a_run(expert_client, teammate_client, done_run):
    assert expert_client.get(url(done_run.pk)).status_code == 200
    assert teammate_client.get(url(done_run.pk)).json()["report"] == done_run.report


def test_outsider_session_gets_404_like_a_missing_run(outsider_client, done_run):
    response = outsider_client.get(url(done_run.pk))
    assert response.status_code == 404
    assert response.json() == {"detail": f"No judge run {done_run.pk}"}
    assert outsider_client.get(url(done_run.pk + 1000)).json() == {"detail": f"No judge run {done_run.pk + 1000}"}


def test_another_projects_token_gets_404(client, done_run):
    other = make_project(slug="other", expert=make_user("other-expert"))
    _, other_token = api_token_create(project=other, name="ci")
    assert get(client, done_run.pk, other_token).status_code == 404


def test_missing_or_bad_token_gets_401(client, done_run):
    assert get(client, done_run.pk).status_code == 401
    assert get(client, done_run.pk, "es_not-a-real-token").status_code == 401


def test_non_numeric_run_id_is_a_clear_client_error(client, token):
    response = client.get("/api/v1/judge-runs/abc", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "run_id"]


def test_route_is_in_the_openapi_document(client):
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    assert "/api/v1/judge-runs/{run_id}" in paths
    assert set(paths["/api/v1/judge-runs/{run_id}"]["get"]["responses"]) >= {"200", "404"}


def test_viewer_session_may_read_a_run(client, project, done_run):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client.force_login(viewer)
    assert client.get(url(done_run.pk)).json()["status"] == "done"
