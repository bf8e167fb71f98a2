"""The agents page and a task's page: access, the create form, grading, the tables and the chart."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agents.models import GradingRun, OutcomeGrader, TrialGrade
from agents.services import grader_create, grading_run_create, grading_run_execute
from annotation.models import Role
from tests.agents.helpers import DONE, make_trial, make_trials
from tests.factories import add_member, make_project, make_user

pytestmark = pytest.mark.django_db
URL = "/projects/acme/agents/"


def _graded(project, outcomes):
    make_trials(project=project, outcomes=outcomes)
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    grading_run_execute(run=grading_run_create(grader=grader))
    return grader


@pytest.fixture
def viewer_client(project, client):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client.force_login(viewer)
    return client


def test_outsider_gets_404_for_every_agents_page(project, outsider_client):
    grader = _graded(project, {"a": [True]})
    for url in (
        URL,
        f"{URL}?grader={grader.pk}",
        f"{URL}graders/{grader.pk}/progress/",
        f"{URL}graders/{grader.pk}/task/?id=a",
    ):
        assert outsider_client.get(url).status_code == 404
    assert outsider_client.post(f"{URL}graders/", {"name": "x"}).status_code == 404
    assert outsider_client.post(f"{URL}graders/{grader.pk}/grade/").status_code == 404


def test_anonymous_user_is_sent_to_log_in(project, client):
    response = client.get(URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_empty_page_offers_the_create_form_to_engineers(project, teammate_client):
    response = teammate_client.get(URL)
    html = response.content.decode()
    assert response.status_code == 200
    assert "No grader yet." in html
    assert 'id="grader-form"' in html
    assert 'href="/projects/acme/agents/">Agents</a>' in html  # the nav link


def test_engineer_creates_a_grader_and_sees_it_selected(project, teammate_client):
    config = json.dumps({"check": "json_schema", "schema": {"required": ["status"]}})
    response = teammate_client.post(
        f"{URL}graders/", {"name": "has status", "target": "final_state", "config": config, "description": ""}
    )
    grader = OutcomeGrader.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"{URL}?grader={grader.pk}"
    assert (grader.target, grader.created_by.username) == ("final_state", "teammate")
    html = teammate_client.get(response["Location"]).content.decode()
    assert "has status" in html and "Not graded yet." in html


def test_engineer_creates_a_tool_calls_grader_and_the_page_says_it_checks_the_path(project, teammate_client):
    empty = teammate_client.get(URL).content.decode()
    assert '<option value="tool_calls">Tool calls (the path)</option>' in empty
    assert "<span data-path-note>a tool-call check is about the path, not the outcome</span>" in empty
    config = json.dumps({"check": "tool_not_called", "tool": "<refund>"})
    response = teammate_client.post(f"{URL}graders/", {"name": "no refund", "target": "tool_calls", "config": config})
    grader = OutcomeGrader.objects.get()
    assert response.status_code == 302 and grader.target == "tool_calls"
    assert grader.config == {"check": "tool_not_called", "target": "tool_calls", "tool": "<refund>"}
    html = teammate_client.get(response["Location"]).content.decode()
    assert "This grader checks the path the agent took (its tool calls), not the outcome" in html
    assert "&lt;refund&gt;" in html and "<refund>" not in html


@pytest.mark.parametrize(
    ("target", "config", "error"),
    [
        ("tool_calls", json.dumps(DONE), "check: a tool-calls grader takes a tool check"),
        ("final_output", '{"check": "tool_called", "tool": "x"}', "target: a tool check is about the path"),
        (
            "tool_calls",
            '{"check": "tool_called", "tool": "x", "arguments_schema": {"$ref": "http://x/s"}}',
            "arguments_schema: $ref",
        ),
    ],
)
def test_a_check_that_does_not_fit_the_target_is_refused_beside_the_config(
    project, teammate_client, target, config, error
):
    response = teammate_client.post(f"{URL}graders/", {"name": "g", "target": target, "config": config})
    assert response.status_code == 400
    html = response.content.decode()
    assert error in html.split('data-field="config">')[1].split("</p>")[0]
    assert not OutcomeGrader.objects.exists()


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ('{"check": "regex"', "not valid JSON"),
        ('{"check": "regex", "pattern": "("}', "pattern: not a valid regular expression"),
        ('{"check": "contains"}', "value: the text to look for is required"),
    ],
)
def test_config_errors_are_shown_beside_the_config_field(project, teammate_client, config, error):
    response = teammate_client.post(f"{URL}graders/", {"name": "g", "target": "final_output", "config": config})
    html = response.content.decode()
    assert response.status_code == 400
    assert '<p class="field-error" data-field="config">' in html
    assert error in html.split('data-field="config">')[1].split("</p>")[0]
    assert config.replace('"', "&quot;") in html  # what was typed is kept
    assert not OutcomeGrader.objects.exists()


def test_duplicate_name_error_is_shown_beside_the_name(project, teammate_client):
    grader_create(project=project, name="done", target="final_output", config=DONE)
    response = teammate_client.post(
        f"{URL}graders/", {"name": "done", "target": "final_output", "config": json.dumps(DONE)}
    )
    assert response.status_code == 400
    assert "already has a grader called" in response.content.decode().split('data-field="name">')[1]


def test_viewer_reads_but_cannot_create_or_grade(project, viewer_client):
    grader = _graded(project, {"a": [True, False]})
    html = viewer_client.get(URL).content.decode()
    assert "done" in html and 'id="overall"' in html
    assert 'id="grader-form"' not in html and "Grade new trials" not in html
    assert viewer_client.post(f"{URL}graders/", {"name": "x", "config": "{}"}).status_code == 403
    assert viewer_client.post(f"{URL}graders/{grader.pk}/grade/").status_code == 403
    assert GradingRun.objects.count() == 1


def test_grade_button_queues_one_run(project, teammate_client, django_capture_on_commit_callbacks):
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    with django_capture_on_commit_callbacks() as callbacks:
        response = teammate_client.post(f"{URL}graders/{grader.pk}/grade/")
        teammate_client.post(f"{URL}graders/{grader.pk}/grade/")
    assert response.status_code == 302
    assert GradingRun.objects.filter(grader=grader, status="queued").count() == 1
    assert len(callbacks) == 1
    html = teammate_client.get(f"{URL}?grader={grader.pk}").content.decode()
    assert 'hx-trigger="every 1s"' in html and "Waiting for a worker." in html


def test_overall_table_chart_and_task_rows_show_the_numbers(project, expert_client):
    # Task a: 3 of 4; task b: 0 of 4; task c: 2 trials, both pass (counts only up to k = 2).
    grader = _graded(project, {"a": [True, True, False, True], "b": [False] * 4, "c": [True, True]})
    html = expert_client.get(f"{URL}?grader={grader.pk}&k=2").content.decode()
    assert "3 tasks · 10 graded trials" in html
    k1 = html.split('<tr data-k="1">')[1].split("</tr>")[0]
    assert '<td class="num" data-cell="tasks">3</td>' in k1
    assert "58.3%" in k1  # pass@1 = (3/4 + 0 + 1) / 3
    k3 = html.split('<tr data-k="3">')[1].split("</tr>")[0]
    assert '<td class="num" data-cell="tasks">2</td>' in k3
    assert "50.0%" in k3  # pass@3 = (1 + 0) / 2
    assert "no task has 5 graded trials" in html
    assert html.count('class="chart-dot pass_at_k"') == 4 and html.count('class="chart-dot pass_hat_k"') == 4
    assert html.count('<polygon class="chart-band') == 2
    row_a = html.split('<tr data-task="a">')[1].split("</tr>")[0]
    assert '<td class="num" data-cell="pass_at_1">75.0%' in row_a
    assert '<td class="num" data-cell="pass_at_k">100.0%' in row_a  # C(1,2) = 0
    assert '<td class="num" data-cell="pass_hat_k">50.0%' in row_a  # C(3,2)/C(4,2) = 3/6
    assert f'href="/projects/acme/agents/graders/{grader.pk}/task/?id=a"' in row_a


def test_task_table_orders_searches_and_pages_in_sql(project, expert_client):
    outcomes = {f"task-{i:03d}": [i % 3 != 0, i % 2 == 0] for i in range(120)}
    grader = _graded(project, outcomes)
    base = f"{URL}?grader={grader.pk}"
    first = expert_client.get(base).content.decode()
    assert first.count("<tr data-task=") == 50
    assert "Page 1 of 3 (120 tasks)" in first
    third = expert_client.get(f"{base}&page=3").content.decode()
    assert third.count("<tr data-task=") == 20 and '<tr data-task="task-119">' in third
    worst = expert_client.get(f"{base}&order=pass1", HTTP_HX_REQUEST="true", HTTP_HX_TARGET="tasks")
    body = worst.content.decode()
    assert body.lstrip().startswith('<div id="tasks">')  # the partial only
    assert body.index('<tr data-task="task-003">') < body.index('<tr data-task="task-000">')  # 0/2 before 1/2
    found = expert_client.get(f"{base}&q=task-11").content.decode()
    assert found.count("<tr data-task=") == 10
    with CaptureQueriesContext(connection) as queries:
        expert_client.get(base)
    assert len(queries) < 25


def test_progress_polls_while_running_then_swaps_in_the_results(project, expert_client):
    make_trials(project=project, outcomes={"a": [True, False]})
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    run = grading_run_create(grader=grader)
    polling = expert_client.get(f"{URL}graders/{grader.pk}/progress/", HTTP_HX_REQUEST="true")
    assert polling.status_code == 200
    assert 'hx-trigger="every 1s"' in polling.content.decode()
    grading_run_execute(run=run)
    done = expert_client.get(f"{URL}graders/{grader.pk}/progress/", HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # stop polling
    assert done["HX-Retarget"] == "#grader-section"
    html = done.content.decode()
    assert 'id="grader-section"' in html and 'id="overall"' in html and "every 1s" not in html


def test_task_page_lists_trials_with_grades_escaped_and_links_to_traces(project, expert_client):
    make_trial(project=project, task_id="t<1>", trial=1, output="<b>DONE</b>")
    make_trial(project=project, task_id="t<1>", trial=2, output="no")
    make_trial(project=project, task_id="t<1>", trial=3, output="x")
    grader = grader_create(project=project, name="state", target="final_state", config={"check": "json"})
    make_trial(project=project, task_id="t<1>", trial=4, output='{"ok": true}')
    grading_run_execute(run=grading_run_create(grader=grader))
    response = expert_client.get(f"{URL}graders/{grader.pk}/task/", {"id": "t<1>"})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Task t&lt;1&gt;" in html and "<b>" not in html
    assert html.count('data-cell="grade"><span class="grade-error">error</span>') == 3
    assert 'data-cell="grade"><span class="grade-pass">pass</span>' in html
    assert 'href="/projects/acme/traces/t%3C1%3E-trial-4/"' in html
    assert '1 graded trial, <span class="grade-pass">1 pass</span>' in html
    assert expert_client.get(f"{URL}graders/{grader.pk}/task/", {"id": "nope"}).status_code == 404
    assert TrialGrade.objects.filter(grader=grader).count() == 4


def test_unknown_grader_is_404(project, expert_client):
    assert expert_client.get(f"{URL}?grader=999").status_code == 404
    other = grader_create(project=make_project(slug="other"), name="x", target="final_output", config=DONE)
    assert expert_client.get(f"{URL}?grader={other.pk}").status_code == 404
    assert expert_client.get(f"{URL}graders/{other.pk}/task/?id=a").status_code == 404


def test_numbers_follow_a_new_grading_run_despite_the_statistics_cache(project, expert_client):
    grader = _graded(project, {"a": [True, False]})
    url = f"{URL}?grader={grader.pk}"
    assert "1 task · 2 graded trials" in expert_client.get(url).content.decode()
    make_trials(project=project, outcomes={"b": [True, True, True]})
    grading_run_execute(run=grading_run_create(grader=grader))
    html = expert_client.get(url).content.decode()
    assert "2 tasks · 5 graded trials" in html
    k1 = html.split('<tr data-k="1">')[1].split("</tr>")[0]
    assert "75.0%" in k1  # (1/2 + 3/3) / 2


def test_few_tasks_warn_that_intervals_are_rough(project, expert_client):
    grader = _graded(project, {"a": [True, False], "b": [True, True]})
    assert (
        "Only 2 tasks: the intervals resample tasks" in expert_client.get(f"{URL}?grader={grader.pk}").content.decode()
    )
