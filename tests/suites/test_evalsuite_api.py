"""`POST /api/v1/projects/{slug}/evalsuite`: the regression suite for CI systems that post; the same checks and
numbers as `manage.py evalsuite`, with `exit_code` in the body."""

from __future__ import annotations

import time

import pytest
from django.test import Client

from annotation.models import Role
from annotation.services import api_token_create
from suites.api import EvalsuiteIn
from suites.models import SuiteRun
from tests.factories import add_member, make_project, make_user
from tests.suites import test_evalsuite as cli

pytestmark = pytest.mark.django_db
criterion = cli.criterion  # the fixture: a promoted assertion judge and 40 golden traces
URL = "/api/v1/projects/acme/evalsuite"


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="ci")[1]


def post(client: Client, body: object, token: str | None = None, **extra):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(URL, body, content_type="application/json", headers=headers, **extra)


def candidates(**kwargs) -> list[dict[str, str]]:
    return [{"id": i, "output": o} for i, o in cli.golden_outputs(**kwargs).items()]


def test_a_token_posts_candidates_and_gets_the_result_with_its_exit_code(client, criterion, token):
    response = post(client, {"candidates": candidates(), "name": "abc123"}, token)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == cli.JSON_KEYS and body["exit_code"] == 0 and body["name"] == "abc123"
    assert body["criteria"][0]["pass_rate"] == 0.75
    assert [w.split(":")[0] for w in body["warnings"]] == ["the golden set has 40 cases, fewer than 100"]
    run = SuiteRun.objects.get()
    assert run.pk == body["run_id"] and run.candidates_file == "api" and run.created_by is None

    regressed = post(client, {"candidates": candidates(apologising=25), "baseline": "abc123"}, token).json()
    assert regressed["exit_code"] == 1 and regressed["criteria"][0]["verdict"] == "regression"
    assert regressed["baseline"]["run_id"] == run.pk


def test_bad_candidates_are_a_400_with_every_problem_and_nothing_is_stored(client, criterion, token):
    items = candidates()
    items[0] = {"id": "g-0"}
    items.append({"id": "g-1", "output": "again"})
    response = post(client, {"candidates": items[1:] + [items[0]], "criteria": ["tone"]}, token)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert "criteria: no criterion 'tone' in project 'acme' (criteria: no_apology)" in errors
    assert "line 40: id 'g-1' is already on line 1" in errors
    assert "line 41: needs an output or messages (the candidate's answer)" in errors
    assert not SuiteRun.objects.exists()
    # The body's own shape: unknown keys and wrong types are named too.
    response = post(client, {"candidate": [], "include_llm": "yes"}, token)
    assert response.status_code == 400
    assert response.json()["errors"] == [
        "unknown key 'candidate' (keys: candidates, baseline, name, include_llm, criteria, alpha, wait)",
        'candidates: a list of {"id", "output"} objects is required',
        "include_llm: expected true or false, got 'yes'",
    ]
    assert post(client, "not json", token).status_code == 400


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ([1], ["body: expected a JSON object, got list"]),
        (
            {"candidates": {}, "baseline": [1]},
            [
                'candidates: expected a list of {"id", "output"} objects, got {}',
                "baseline: expected a run name or id, got [1]",
            ],
        ),
        ({"candidates": [], "baseline": True}, ["baseline: expected a run name or id, got True"]),
        (
            {"candidates": [], "name": 5, "criteria": ["tone", 2], "alpha": "0.1", "wait": "no"},
            [
                "name: expected a string, got 5",
                "criteria: expected a list of criterion names",
                "alpha: expected a number, got '0.1'",
                "wait: expected true or false, got 'no'",
            ],
        ),
    ],
)
def test_a_body_of_the_wrong_shape_is_a_400_naming_each_field_and_what_came(client, project, token, body, errors):
    response = post(client, body, token)
    assert (response.status_code, response.json()) == (400, {"detail": errors[0], "errors": errors})
    assert not SuiteRun.objects.exists()


def test_a_baseline_run_id_may_come_as_a_number_and_defaults_are_filled_in():
    body = EvalsuiteIn.model_validate({"candidates": [], "baseline": 7})
    assert (body.baseline, body.name, body.include_llm, body.criteria, body.alpha, body.wait) == (
        "7", "", False, None, 0.05, None,
    )  # fmt: skip


def test_tokens_and_sessions_are_checked(client, project, criterion, token, outsider_client, teammate_client):
    assert post(client, {"candidates": candidates()}).status_code == 401
    assert post(client, {"candidates": candidates()}, "es_wrong").status_code == 401
    other = make_project(slug="other", expert=make_user("other-expert"))
    other_token = api_token_create(project=other, name="ci")[1]
    assert post(client, {"candidates": candidates()}, other_token).status_code == 404
    assert post(outsider_client, {"candidates": candidates()}).status_code == 404
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    viewer_client = Client()
    viewer_client.force_login(viewer)
    assert post(viewer_client, {"candidates": candidates()}).status_code == 403
    assert not SuiteRun.objects.exists()
    # An engineer's session may run it (Django's test client skips CSRF checks).
    response = post(teammate_client, {"candidates": candidates()})
    assert response.status_code == 200 and SuiteRun.objects.get().created_by.username == "teammate"


def test_the_openapi_document_describes_the_route_and_its_body(client):
    route = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/projects/{slug}/evalsuite"]["post"]
    body = route["requestBody"]["content"]["application/json"]["schema"]
    assert body["required"] == ["candidates"] and set(body["properties"]) == {
        "candidates", "baseline", "name", "include_llm", "criteria", "alpha", "wait",
    }  # fmt: skip
    assert {"200", "400", "403", "404"} <= set(route["responses"]) and "exit_code" in route["description"]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_without_waiting_the_worker_judges_the_run_and_the_status_route_gives_the_result(
    celery_worker, client, criterion, token
):
    response = post(client, {"candidates": candidates(apologising=25), "wait": False, "name": "nightly"}, token)
    assert response.status_code == 202
    queued = response.json()
    assert queued["status"] == "queued" and queued["status_url"] == f"/api/v1/suite-runs/{queued['run_id']}"
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + 60
    while True:
        body = client.get(queued["status_url"], headers=headers).json()
        if body["status"] in ("done", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert body["status"] == "done", body
    assert body["exit_code"] == 1 and body["result"]["criteria"][0]["verdict"] == "regression"
    assert body["result"]["run_id"] == queued["run_id"] and body["name"] == "nightly"
    assert SuiteRun.objects.get().cases.count() == cli.GOLDEN
    # Another project's token sees nothing, as for a missing run.
    other = make_project(slug="other", expert=make_user("other-expert"))
    other_token = api_token_create(project=other, name="ci")[1]
    assert client.get(queued["status_url"], headers={"Authorization": f"Bearer {other_token}"}).status_code == 404


def test_a_queued_run_whose_worker_never_came_is_claimable_and_judged_once(client, criterion, token):
    from core.runs import claimable_runs
    from suites.evalsuite import suite_run_execute
    from suites.models import SuiteVerdict

    # Without a committed transaction the task is never sent: the run waits, as when no worker is up.
    queued = post(client, {"candidates": candidates(), "wait": False}, token).json()
    run = SuiteRun.objects.get(pk=queued["run_id"])
    assert run.status == "queued" and not SuiteVerdict.objects.exists()
    assert list(claimable_runs(SuiteRun)) == [run]  # what a starting worker queues again
    assert suite_run_execute(run=run).exit_code == 0
    assert suite_run_execute(run=run) is None  # done: a second delivery finds nothing to claim
    assert SuiteVerdict.objects.filter(case__run=run).count() == cli.GOLDEN
    assert list(claimable_runs(SuiteRun)) == []
    body = client.get(f"/api/v1/suite-runs/{run.pk}", headers={"Authorization": f"Bearer {token}"}).json()
    assert body["status"] == "done" and body["exit_code"] == 0 and body["result"]["passed"] is True
