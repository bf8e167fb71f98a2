"""The reads behind the agents pages: a task's row in the table, its own page, and a grader's latest run."""

from __future__ import annotations

import pytest

from agents.reliability import task_estimate, task_row
from agents.selectors import grader_latest_run, grader_task_detail
from agents.services import grader_create, grading_run_create, grading_run_execute
from judges.stats import wilson_interval
from tests.agents.helpers import make_trial

REFUNDED = {"check": "json_schema", "schema": {"required": ["status"], "properties": {"status": {"const": "refunded"}}}}


def test_a_task_row_has_pass_at_1_with_its_interval_and_the_estimates_at_k():
    row = task_row(task_id="t", n=4, c=3, errors=1, k=2)
    assert (row.task_id, row.n, row.c, row.errors, row.pass_at_1) == ("t", 4, 3, 1, 0.75)
    assert row.pass_at_1_ci == wilson_interval(3, 4)
    assert row.at_k == task_estimate(4, 3, 2) and row.at_k.pass_at_k == 1.0 and row.at_k.pass_hat_k == 0.5


def test_a_task_without_a_graded_trial_has_no_rates():
    row = task_row(task_id="t", n=0, c=0, errors=2, k=3)
    assert (row.pass_at_1, row.pass_at_1_ci, row.at_k.k, row.at_k.pass_at_k, row.at_k.pass_hat_k) == (
        None,
        None,
        3,
        None,
        None,
    )


@pytest.fixture
def grader(project, expert):
    """refund: three trials with a final state (two reach "refunded"), one without (an error); cancel: one."""
    for trial, status in enumerate(["refunded", "open", "refunded"], start=1):
        make_trial(project=project, task_id="refund", trial=trial, metadata={"final_state": {"status": status}})
    make_trial(project=project, task_id="refund", trial=4, output="Refunded, all good")  # no final state
    make_trial(project=project, task_id="cancel", trial=1, metadata={"final_state": {"status": "refunded"}})
    return grader_create(project=project, name="refunded", target="final_state", config=REFUNDED, user=expert)


@pytest.mark.django_db
def test_a_tasks_page_has_its_trials_counts_and_an_estimate_per_k_up_to_its_trials(grader, expert):
    assert grader_latest_run(grader=grader) is None
    run = grading_run_create(grader=grader, user=expert)
    assert grader_latest_run(grader=grader) == run
    grading_run_execute(run=run)
    detail = grader_task_detail(grader=grader, task_id="refund")
    assert [t.trial for t in detail.trials] == [1, 2, 3, 4]
    assert (detail.n, detail.c, detail.errors, detail.truncated) == (3, 2, 1, False)
    assert detail.pass_at_1_ci == wilson_interval(2, 3)
    assert [e.k for e in detail.estimates] == [1, 2, 3]
    assert detail.estimates[2] == task_estimate(3, 2, 3)
    assert grader_task_detail(grader=grader, task_id="nope") is None
