"""Outcome graders: config errors, what a grader looks at, grading in chunks, idempotency, the worker, the command."""

from __future__ import annotations

import json
import re
import time
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from agents.models import GradingRun, OutcomeGrader, TrialGrade
from agents.reliability import TaskCounts
from agents.selectors import grader_totals, task_counts
from agents.services import grader_create, grading_run_create, grading_run_enqueue, grading_run_execute
from annotation.services import DomainError
from core.runs import claimable_runs
from tests.agents.helpers import DONE, make_trial, make_trials
from tests.factories import make_agent_trace, make_project, make_trace

pytestmark = pytest.mark.django_db


def _grade(grader: OutcomeGrader, chunk_size: int = 500) -> GradingRun:
    return grading_run_execute(run=grading_run_create(grader=grader), chunk_size=chunk_size)


def _grades(grader: OutcomeGrader) -> dict[str, bool | None]:
    return {g.trace.external_id: g.passed for g in TrialGrade.objects.filter(grader=grader).select_related("trace")}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"check": "regex"}, "config: pattern: a regular expression is required"),
        ({"check": "nope"}, "config: check: expected one of"),
        ({"check": "contains", "value": "x", "colour": 1}, "config: colour: not a setting of a contains check"),
        ({"check": "json", "path": "answer"}, "config: path: must start with $"),
        ({"check": "contains", "value": "x", "target": "input"}, "config: target: an outcome grader checks"),
        ([1, 2], "config: config: expected a JSON object"),
    ],
)
def test_bad_grader_config_is_refused_naming_the_key(project, config, message):
    with pytest.raises(DomainError, match=message.replace("$", r"\$")):
        grader_create(project=project, name="g", target="final_output", config=config)
    assert not OutcomeGrader.objects.exists()


def test_grader_names_are_unique_per_project_and_required(project):
    grader_create(project=project, name="done", target="final_output", config=DONE)
    with pytest.raises(DomainError, match="name: project acme already has a grader called 'done'"):
        grader_create(project=project, name=" done ", target="final_output", config=DONE)
    with pytest.raises(DomainError, match="name: a grader needs a name"):
        grader_create(project=project, name="  ", target="final_output", config=DONE)
    with pytest.raises(DomainError, match="target: expected one of"):
        grader_create(project=project, name="other", target="path", config=DONE)
    grader = grader_create(project=make_project(), name="done", target="final_output", config=DONE)
    assert grader.config == {
        "check": "contains",
        "target": "output",
        "value": "DONE",
        "must_contain": True,
        "ignore_case": False,
    }


def test_grading_passes_and_fails_trials_and_ignores_traces_that_are_not_trials(project):
    make_trials(project=project, outcomes={"refund": [True, False, True], "cancel": [False, False]})
    make_trace(project=project, external_id="plain", output="DONE")  # no task: not a trial
    make_trace(project=project, external_id="no-trial", output="DONE", task_id="refund")  # no trial number
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    run = _grade(grader, chunk_size=2)
    assert (run.status, run.total, run.graded) == ("done", 5, 5)
    assert _grades(grader) == {
        "refund-trial-1": True,
        "refund-trial-2": False,
        "refund-trial-3": True,
        "cancel-trial-1": False,
        "cancel-trial-2": False,
    }
    assert sorted(task_counts(grader=grader), key=lambda t: t.n) == [TaskCounts(2, 0, 1), TaskCounts(3, 2, 1)]
    grade = TrialGrade.objects.get(grader=grader, trace__external_id="refund-trial-2")
    assert (grade.task_id, grade.trial, grade.reasoning) == ("refund", 2, "output does not contain 'DONE' (required)")


def test_grading_twice_grades_nothing_twice_and_picks_up_new_trials(project):
    make_trials(project=project, outcomes={"refund": [True, False]})
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    assert _grade(grader).graded == 2
    again = _grade(grader)
    assert (again.total, again.graded) == (0, 0)
    assert TrialGrade.objects.count() == 2
    make_trial(project=project, task_id="refund", trial=3, passed=True)
    third = _grade(grader)
    assert (third.total, third.graded) == (1, 1)
    assert TrialGrade.objects.filter(grader=grader).count() == 3
    assert GradingRun.objects.filter(grader=grader).count() == 3


def test_a_run_already_going_is_returned_instead_of_starting_another(project):
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    first = grading_run_create(grader=grader)
    assert grading_run_create(grader=grader) == first
    GradingRun.objects.filter(pk=first.pk).update(status="running", started_at=first.created_at)
    assert grading_run_create(grader=grader) == first


def test_a_run_held_by_a_live_worker_is_not_claimed_again(project):
    make_trials(project=project, outcomes={"refund": [True]})
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    run = grading_run_create(grader=grader)
    from django.utils import timezone

    GradingRun.objects.filter(pk=run.pk).update(status="running", heartbeat_at=timezone.now())
    assert grading_run_execute(run=run).status == "running"
    assert not TrialGrade.objects.exists()


def test_final_output_falls_back_to_the_last_assistant_message_and_never_reads_tool_calls(project):
    # The tool result says DONE but the agent's last message does not: the path is never graded.
    make_agent_trace(project=project, external_id="answered", task_id="t", trial=1)
    trace = make_agent_trace(project=project, external_id="tool-only", task_id="t", trial=2)
    trace.messages[3]["content"] = "DONE"  # the tool result
    trace.messages[4]["content"] = "I could not finish."
    trace.save()
    ended_on_tool = make_agent_trace(project=project, external_id="ended-on-tool", task_id="t", trial=3)
    ended_on_tool.messages = ended_on_tool.messages[:4]
    ended_on_tool.save()
    grader = grader_create(
        project=project, name="shipped", target="final_output", config={"check": "regex", "pattern": "shipped|DONE"}
    )
    _grade(grader)
    assert _grades(grader) == {"answered": True, "tool-only": False, "ended-on-tool": False}


LOOKUP_BY_ID = {
    "check": "tool_called",
    "target": "tool_calls",
    "tool": "lookup_order",
    "arguments_schema": {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "integer"}}},
}


def test_a_tool_calls_grader_reads_the_path_whatever_the_trial_answered(project):
    # Every trial ends with the same good answer; only the path differs.
    make_agent_trace(project=project, external_id="by-id", task_id="t", trial=1, output="Your order has shipped.")
    by_name = make_agent_trace(project=project, external_id="by-name", task_id="t", trial=2, output="It has shipped.")
    by_name.messages[2]["tool_calls"][0]["function"]["arguments"] = '{"order_id": "forty-two"}'
    by_name.save()
    guessed = make_agent_trace(project=project, external_id="guessed", task_id="t", trial=3, output="It has shipped.")
    guessed.messages = [m for m in guessed.messages if not m.get("tool_calls") and m["role"] != "tool"]
    guessed.save()
    make_trial(project=project, task_id="t", trial=4, output="It has shipped.")  # no messages: no path recorded
    grader = grader_create(project=project, name="looked up", target="tool_calls", config=LOOKUP_BY_ID)
    assert grader.config == LOOKUP_BY_ID
    _grade(grader)
    assert _grades(grader) == {"by-id": True, "by-name": False, "guessed": False, "t-trial-4": None}
    reasons = dict(TrialGrade.objects.filter(grader=grader).values_list("trace__external_id", "reasoning"))
    assert reasons["by-id"] == "lookup_order was called with arguments matching the schema at messages[2] (call_1)"
    assert reasons["by-name"].endswith("breaks it at ['order_id']: 'forty-two' is not of type 'integer'")
    assert reasons["guessed"] == "lookup_order was never called (no tool was called)"
    assert TrialGrade.objects.get(trace__external_id="t-trial-4").error == (
        "no messages: the trial recorded no path, so its tool calls cannot be checked"
    )
    # A final-output grader on the same trials passes them all: the outcome is fine, the path is not.
    answer = grader_create(
        project=project, name="shipped", target="final_output", config={"check": "contains", "value": "shipped"}
    )
    _grade(answer)
    assert set(_grades(answer).values()) == {True}


@pytest.mark.parametrize(
    ("target", "config", "message"),
    [
        (
            "tool_calls",
            DONE,
            "config: check: a tool-calls grader takes a tool check (tool_called, tool_not_called, tool_call_count), "
            "got 'contains'",
        ),
        (
            "final_output",
            {"check": "tool_not_called", "tool": "refund"},
            "config: target: a tool check is about the path (the trial's tool calls), not its final output: choose "
            "the grader target tool_calls",
        ),
        (
            "final_state",
            {"check": "tool_called", "tool": "x"},
            "not its final state: choose the grader target tool_calls",
        ),
        ("tool_calls", {"check": "tool_called"}, "config: tool / in_order: give the tool's name"),
    ],
)
def test_a_tool_check_goes_with_the_tool_calls_target_and_only_with_it(project, target, config, message):
    with pytest.raises(DomainError, match=re.escape(message)):
        grader_create(project=project, name="g", target=target, config=config)
    assert not OutcomeGrader.objects.exists()


def test_final_state_comes_from_metadata_or_a_json_output_and_is_an_error_when_missing(project):
    schema = {
        "check": "json_schema",
        "schema": {"required": ["status"], "properties": {"status": {"const": "refunded"}}},
    }
    make_trial(project=project, task_id="t", trial=1, metadata={"final_state": {"status": "refunded"}}, output="Hi")
    make_trial(project=project, task_id="t", trial=2, metadata={"final_state": {"status": "open"}})
    make_trial(project=project, task_id="t", trial=3, output='{"status": "refunded", "amount": 12}')
    make_trial(project=project, task_id="t", trial=4, output="Refunded, all good")  # no final state
    make_trial(project=project, task_id="t", trial=5, metadata={"final_state": "refunded"})  # not an object
    grader = grader_create(project=project, name="refunded", target="final_state", config=schema)
    _grade(grader)
    assert _grades(grader) == {
        "t-trial-1": True,
        "t-trial-2": False,
        "t-trial-3": True,
        "t-trial-4": None,
        "t-trial-5": None,
    }
    missing = TrialGrade.objects.get(trace__external_id="t-trial-4")
    assert missing.error.startswith("no final state: the trace has no metadata.final_state")
    assert TrialGrade.objects.get(trace__external_id="t-trial-5").error.startswith("metadata.final_state is a string")
    failed = TrialGrade.objects.get(trace__external_id="t-trial-2")
    assert failed.reasoning.startswith("final state breaks the schema")
    # Errors are not trials of the estimate: n counts the three graded ones.
    assert task_counts(grader=grader) == [TaskCounts(3, 2, 1)]
    totals = grader_totals(grader=grader)
    assert (totals.trials, totals.passed, totals.failed, totals.errors) == (5, 2, 1, 2)


def test_final_state_path_checks_look_inside_the_state(project):
    make_trial(project=project, task_id="t", trial=1, metadata={"final_state": {"order": {"items": [{"qty": 2}]}}})
    make_trial(project=project, task_id="t", trial=2, metadata={"final_state": {"order": {"items": []}}})
    grader = grader_create(
        project=project,
        name="qty",
        target="final_state",
        config={"check": "regex", "pattern": "^2$", "path": "$.order.items[0].qty"},
    )
    _grade(grader)
    assert _grades(grader) == {"t-trial-1": True, "t-trial-2": False}


def test_grade_trials_command_grades_and_prints_the_k_table(project):
    make_trials(project=project, outcomes={"a": [True, False, True, True], "b": [False, False, True, False]})
    grader_create(project=project, name="done", target="final_output", config=DONE)
    out = StringIO()
    call_command("grade_trials", "--project", "acme", "--grader", "done", stdout=out)
    text = out.getvalue()
    assert "Graded 8 new trial(s) with 'done'. 2 task(s), 8 graded trial(s): 4 pass, 4 fail, 0 error(s)." in text
    assert re.search(r"^ 1 +2 +50\.0% \[", text, re.MULTILINE)  # k = 1, both tasks, pass@1 = 4/8
    out = StringIO()
    call_command("grade_trials", "--project", "acme", "--grader", "done", "--json", stdout=out)
    payload = json.loads(out.getvalue())
    assert payload["graded"] == 0
    assert payload["k"][0]["pass_at_k"] == 0.5
    assert payload["k"][1]["pass_at_k"] == pytest.approx((1 - 0 / 6 + 1 - 3 / 6) / 2)  # a: C(1,2)=0; b: C(3,2)=3
    assert payload["k"][4]["tasks"] == 0
    with pytest.raises(CommandError, match="--grader: project acme has no grader 'nope' \\(graders: done\\)"):
        call_command("grade_trials", "--project", "acme", "--grader", "nope")
    with pytest.raises(CommandError, match="--project: no project"):
        call_command("grade_trials", "--project", "nope", "--grader", "done")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_grading_runs_on_a_real_worker_after_commit(project, celery_worker):
    make_trials(project=project, outcomes={f"task-{i}": [True, i % 2 == 0, False] for i in range(30)})
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    run = grading_run_enqueue(grader=grader)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            break
        time.sleep(0.2)
    assert (run.status, run.total, run.graded) == ("done", 90, 90)
    assert TrialGrade.objects.filter(grader=grader, passed=True).count() == 30 + 15


def test_a_run_whose_worker_went_quiet_is_claimed_again_and_finished(project, settings):
    from datetime import timedelta

    from django.utils import timezone

    make_trials(project=project, outcomes={"refund": [True, False, True]})
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    run = grading_run_create(grader=grader)
    long_ago = timezone.now() - timedelta(seconds=settings.EVALSTUDIO_RUN_STALE_SECONDS + 5)
    GradingRun.objects.filter(pk=run.pk).update(status="running", started_at=long_ago, heartbeat_at=long_ago)
    assert grading_run_create(grader=grader) != run  # a lost run does not block a new one
    assert run in claimable_runs(GradingRun)  # what a starting worker queues again
    finished = grading_run_execute(run=run)
    assert (finished.status, finished.total, finished.graded) == ("done", 3, 3)


class WorkerKilled(BaseException):
    """Stands for SIGKILL: nothing in the run's code catches it, so the run stays RUNNING, as when its worker dies."""


def test_a_run_taken_over_after_its_worker_died_grades_only_what_is_left_and_keeps_counting(project, monkeypatch):
    from datetime import timedelta

    from django.utils import timezone

    from agents import services
    from core.runs import stale_window

    make_trials(project=project, outcomes={f"task-{i}": [True, False, True] for i in range(10)})
    grader = grader_create(project=project, name="done", target="final_output", config=DONE)
    run = grading_run_create(grader=grader)
    trial_views, loaded, dying = services._trial_views, [], [True]

    def load_then_die(grader: OutcomeGrader, ids: list[int]) -> list:
        loaded.append(len(ids))
        if dying[0] and len(loaded) == 2:
            raise WorkerKilled
        return trial_views(grader, ids)

    monkeypatch.setattr(services, "_trial_views", load_then_die)
    with pytest.raises(WorkerKilled):
        grading_run_execute(run=run, chunk_size=10)
    run.refresh_from_db()
    assert (run.status, run.total, run.graded) == ("running", 30, 10)

    GradingRun.objects.filter(pk=run.pk).update(heartbeat_at=timezone.now() - stale_window() - timedelta(seconds=1))
    dying[0], loaded[:] = False, []
    finished = grading_run_execute(run=run, chunk_size=10)
    assert loaded == [10, 10]  # only the 20 trials left
    assert (finished.status, finished.attempts, finished.total, finished.graded) == ("done", 2, 30, 30)
    assert TrialGrade.objects.filter(grader=grader).count() == 30
