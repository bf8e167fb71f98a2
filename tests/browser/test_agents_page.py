"""The agents page in a real browser: create an outcome grader (fixing a config error first), grade on a real
worker while the page polls, then read the pass@k / pass^k table, the chart and a task's trials."""

from __future__ import annotations

import json
import re

import pytest

from agents.models import GradingRun, OutcomeGrader
from tests.agents.helpers import make_trials
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
SCREENSHOT = "/tmp/agents-page.png"


def test_engineer_creates_a_grader_grades_trials_and_reads_pass_at_k(page, live_server, project, request):
    make_trials(
        project=project,
        outcomes={
            "refund-<b>bold</b>": [True, True, False, True, True],
            "cancel-order": [False, False, True, False, False],
            "change-address": [True] * 5,
        },
    )
    login(page, live_server, "teammate", "/projects/acme/agents/")
    page.wait_for_url(re.compile(r"/projects/acme/agents/$"))
    page.wait_for_selector("text=No grader yet.")

    page.fill("#id_name", "says done")
    page.fill("#id_config", '{"check": "contains"}')
    page.click("#grader-form button[type=submit]")
    error = page.locator('.field-error[data-field="config"]')
    assert "value: the text to look for is required" in error.inner_text()
    assert not OutcomeGrader.objects.exists()

    page.fill("#id_config", json.dumps({"check": "contains", "value": "DONE"}))
    page.click("#grader-form button[type=submit]")
    page.wait_for_selector("#grader-section h2:has-text('says done')")
    page.click("text=Grade new trials")
    page.wait_for_selector('#grading-progress [data-status="queued"]')
    assert page.locator("#grading-progress[hx-trigger='every 1s']").count() == 1

    request.getfixturevalue("celery_worker")  # a real worker; the polling page swaps in the results
    page.wait_for_selector("#overall", timeout=30_000)
    assert GradingRun.objects.get().status == "done"
    assert page.locator("#grading-progress[hx-trigger]").count() == 0  # polling stopped
    assert "3 tasks · 15 graded trials" in page.inner_text("#totals")
    k1 = page.locator('#overall tr[data-k="1"]')
    assert k1.locator('[data-cell="pass_at_k"]').inner_text().startswith("66.7%")  # (4/5 + 1/5 + 1) / 3
    k5 = page.locator('#overall tr[data-k="5"]')
    assert k5.locator('[data-cell="pass_at_k"]').inner_text().startswith("100.0%")
    assert k5.locator('[data-cell="pass_hat_k"]').inner_text().startswith("33.3%")  # only change-address
    assert page.locator('#overall tr[data-k="6"]').inner_text().endswith("no task has 6 graded trials")
    assert page.locator("#reliability-chart circle.chart-dot.pass_at_k").count() == 5
    assert page.locator("#reliability-chart polygon.chart-band").count() == 2
    page.screenshot(path=SCREENSHOT, full_page=True)

    # The task table through htmx: the least reliable task first, then its trials.
    page.select_option('#tasks select[name="order"]', "pass1")
    page.wait_for_function("document.querySelector('#tasks tbody tr').dataset.task === 'cancel-order'")
    assert page.locator("#tasks tr[data-task] b").count() == 0  # the task id is text, not markup
    page.click('#tasks tr[data-task="refund-<b>bold</b>"] a')
    page.wait_for_selector("h1:has-text('Task refund-<b>bold</b>')")
    assert page.locator("table.trials tr[data-trial]").count() == 5
    assert page.locator('tr[data-trial="3"] [data-cell="grade"]').inner_text() == "fail"
