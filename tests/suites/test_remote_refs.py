"""JSON Schema `$ref`s never leave the schema: a config naming `http://127.0.0.1:PORT/x.json` is refused when it is
saved (an assertion judge's version, an agent grader), and one stored before that rule makes its judgments errors
without a single request reaching the loopback listener — in a judge run, in agent grading and in the regression
suite posted with `wait: true` (inside the web request)."""

from __future__ import annotations

import json

import pytest
from django.urls import reverse

from agents.models import OutcomeGrader, TrialGrade
from agents.services import grader_create, grading_run_create, grading_run_execute
from annotation.services import DomainError, api_token_create
from judges.models import Judge, JudgeVersion, Judgment, Promotion
from judges.services import judge_create, judge_run_create, judge_run_execute
from suites.models import SuiteVerdict
from tests.agents.helpers import make_trial
from tests.factories import make_criterion, make_label, make_trace
from tests.listener import Listener
from tests.suites import test_evalsuite as cli

pytestmark = pytest.mark.django_db
criterion = cli.criterion  # the fixture: a promoted assertion judge and 40 golden traces
APOLOGY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}


@pytest.fixture
def schema_host():
    """A loopback listener that would serve the schema, were anything to ask for it."""
    with Listener(headers={"Content-Type": "application/schema+json"}, body=b'{"type": "string"}') as listener:
        yield listener


def remote_schema(listener: Listener) -> dict:
    return {"type": "object", "properties": {"card_id": {"$ref": f"http://127.0.0.1:{listener.port}/x.json"}}}


def store_config(version: JudgeVersion, config: dict) -> None:
    """As a version saved before remote refs were refused would hold it (versions are otherwise immutable)."""
    JudgeVersion.objects.filter(pk=version.pk).update(config=config)


def test_saving_an_assertion_judge_version_with_a_remote_ref_is_refused(project, expert_client, schema_host):
    judge = judge_create(
        project=project, criterion=make_criterion(project=project, name="c"), name="j", kind="assertion", config=APOLOGY
    )
    config = {"check": "json_schema", "schema": {"$ref": f"http://127.0.0.1:{schema_host.port}/x.json"}}
    response = expert_client.post(
        reverse("judge_version_create", args=["acme", judge.pk]), {"config": json.dumps(config)}
    )
    assert response.status_code == 400
    assert response.context["form_errors"]["config"].startswith(
        f"config: schema: $ref 'http://127.0.0.1:{schema_host.port}/x.json' at the top level is not inside the schema"
    )
    with pytest.raises(DomainError, match="is not inside the schema"):
        judge_create(project=project, criterion=judge.criterion, name="j2", kind="assertion", config=config)
    assert judge.versions.count() == 1 and Judge.objects.count() == 1 and schema_host.received_nothing()


def test_saving_an_agent_grader_with_a_remote_ref_is_refused(project, teammate_client, schema_host):
    url = f"http://127.0.0.1:{schema_host.port}/x.json"
    config = {"check": "tool_called", "tool": "freeze_card", "arguments_schema": {"$ref": url}}
    page = teammate_client.post("/projects/acme/agents/graders/", {"name": "g", "target": "tool_calls",
                                                                   "config": json.dumps(config)})  # fmt: skip
    assert page.status_code == 400 and f"arguments_schema: $ref &#x27;{url}&#x27;" in page.content.decode()
    with pytest.raises(DomainError, match="is not inside the schema"):
        grader_create(project=project, name="g", target="final_output", config={"check": "json_schema",
                                                                                "schema": {"$ref": url}})  # fmt: skip
    assert not OutcomeGrader.objects.exists() and schema_host.received_nothing()


def test_a_stored_judge_version_with_a_remote_ref_errors_its_judgments_and_fetches_nothing(project, schema_host):
    json_output = make_criterion(project=project, name="card_json")
    for i in range(12):
        trace = make_trace(project=project, external_id=f"j-{i}", output=json.dumps({"card_id": f"c-{i}"}))
        make_label(trace=trace, criterion=json_output, verdict="pass")
    judge = judge_create(
        project=project, criterion=json_output, name="card", kind="assertion", config={"check": "json"}
    )
    version = judge.latest_version()
    store_config(version, {"check": "json_schema", "target": "output", "schema": remote_schema(schema_host)})
    run = judge_run_execute(run=judge_run_create(version=JudgeVersion.objects.get(pk=version.pk), split="all"))
    judgments = Judgment.objects.filter(run=run)
    assert judgments.count() == 12 and not judgments.exclude(verdict="").exists()
    assert all("which is not inside it; nothing is fetched" in j.error for j in judgments)
    assert schema_host.received_nothing()


def test_a_stored_agent_grader_with_a_remote_ref_grades_nothing_and_fetches_nothing(project, schema_host):
    for i in range(3):
        make_trial(project=project, task_id="t", trial=i + 1, output='{"card_id": 5}')
    grader = OutcomeGrader.objects.create(
        project=project, name="g", target="final_output",
        config={"check": "json_schema", "target": "output", "schema": remote_schema(schema_host)},
    )  # fmt: skip
    grading_run_execute(run=grading_run_create(grader=grader))
    grades = TrialGrade.objects.filter(grader=grader)
    assert grades.count() == 3 and all(g.passed is None and "nothing is fetched" in g.error for g in grades)
    assert schema_host.received_nothing()


def test_evalsuite_with_wait_true_judges_a_stored_remote_ref_without_fetching(client, project, criterion, schema_host):
    version = Promotion.objects.get(ended_at=None).version
    store_config(version, {"check": "json_schema", "target": "output", "schema": remote_schema(schema_host)})
    token = api_token_create(project=project, name="ci")[1]
    # JSON answers, so that the schema is applied to each (text is failed before any schema is read).
    body = {"candidates": [{"id": i, "output": '{"card_id": 5}'} for i in cli.golden_outputs()], "wait": True}
    response = client.post(
        "/api/v1/projects/acme/evalsuite", body, content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )  # fmt: skip
    assert response.status_code == 200
    result = response.json()
    assert result["exit_code"] == 1  # judge errors fail the suite
    errors = SuiteVerdict.objects.filter(case__run_id=result["run_id"]).exclude(error="")
    assert errors.count() == 40 and "nothing is fetched" in errors.first().error
    assert schema_host.received_nothing()
