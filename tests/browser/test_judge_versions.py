"""A judge's versions in a real browser: make a version (after a bad try), read the diff, add a train disagreement
as a few-shot example, preview the prompt, and read the dev history chart."""

from __future__ import annotations

import json
import re

import pytest

from judges.models import Judge, Judgment
from judges.selectors import split_key
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_run_maybe_finish, judge_run_plan
from judges.splits import split_of
from tests.browser.conftest import login
from tests.factories import make_criterion, make_label, make_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
APOLOGY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
SCREENSHOT = "/tmp/judge-versions.png"
EXAMPLES_SCREENSHOT = "/tmp/judge-examples.png"


@pytest.fixture
def criterion(project):
    criterion = make_criterion(project=project, name="no_apology", definition="Fail when the bot apologises.")
    for i in range(40):
        verdict = "fail" if i % 3 == 0 else "pass"
        trace = make_trace(project=project, external_id=f"t-{i:02d}", output="Sorry." if verdict == "fail" else "Ok.")
        make_label(trace=trace, criterion=criterion, verdict=verdict, critique=f"<i>Critique</i> of t-{i:02d}")
    return criterion


def test_expert_makes_a_version_reads_the_diff_and_the_history(page, live_server, project, criterion):
    judge = judge_create(project=project, criterion=criterion, name="apology-check", kind="assertion", config=APOLOGY)
    judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="dev"))
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    login(page, live_server, "expert", "/projects/acme/judges/")
    page.click(f"#judge-{judge.pk} h3 a")
    page.wait_for_url(re.compile(rf"/projects/acme/judges/{judge.pk}/$"))
    assert json.loads(page.input_value("#id_config")) == judge.latest_version().config

    page.fill("#id_config", '{"check": ')
    page.click("#new-version button[type=submit]")
    assert "config: not valid JSON" in page.inner_text("#config-error")

    page.fill("#id_config", json.dumps({**APOLOGY, "value": "regret"}))
    page.fill("#id_comment", "subtle apologies")
    page.click("#new-version button[type=submit]")
    page.wait_for_selector("#v2")
    assert "subtle apologies" in page.inner_text("#v2")
    assert Judge.objects.get(pk=judge.pk).versions.count() == 2

    page.click("#v2 a.diff-link")
    page.wait_for_selector("pre.config-diff")
    assert page.inner_text("pre.config-diff .removed").strip() == '-  "value": "sorry"'
    assert page.inner_text("pre.config-diff .added").strip() == '+  "value": "regret"'
    # Colours come from judges.css: an added line is not styled like a removed one.
    added_bg = page.eval_on_selector("pre.config-diff .added", "e => getComputedStyle(e).backgroundColor")
    removed_bg = page.eval_on_selector("pre.config-diff .removed", "e => getComputedStyle(e).backgroundColor")
    assert added_bg != removed_bg

    # History: v1 has a dev run, drawn as points with whiskers under a target line; v2 has none yet.
    assert page.locator('svg.history-chart g.point[data-version="1"]').count() >= 2
    assert page.locator("svg.history-chart line.target").count() == 1
    assert "no finished dev run" in page.inner_text('.history-table tr[data-version="2"]')
    page.screenshot(path=SCREENSHOT, full_page=True)
    assert not [text for text in console if "Content Security Policy" in text or "Refused" in text]


def test_expert_adds_a_train_disagreement_as_example_and_previews_the_prompt(
    page, live_server, project, criterion, settings
):
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # an endpoint is configured; nothing calls it
    judge = judge_create(project=project, criterion=criterion, name="apology-llm", kind="llm", config={"few_shot": 0})
    run = judge_run_create(version=judge.latest_version(), split="all")
    judge_run_plan(run=run)
    # Judgment rows stand in for the LLM: it gets every trace wrong, so each is a disagreement.
    Judgment.objects.bulk_create(
        Judgment(run=run, trace_id=label.trace_id, verdict="pass" if label.verdict == "fail" else "fail")
        for label in criterion.labels.all()
    )
    judge_run_maybe_finish(run=run)
    key = split_key(criterion)
    shown = [f"t-{i:02d}" for i in range(25)]  # the first page of disagreements, in trace order
    train_id = next(t for t in shown if split_of(key, t) == "train")
    dev_id = next(t for t in shown if split_of(key, t) == "dev")

    login(page, live_server, "expert", f"/projects/acme/judges/runs/{run.pk}/")
    page.wait_for_selector(f'tr[data-trace="{dev_id}"]')
    assert "it would leak" in page.inner_text(f'tr[data-trace="{dev_id}"]')
    assert page.locator(f'tr[data-trace="{dev_id}"] button').count() == 0
    page.screenshot(path=EXAMPLES_SCREENSHOT, full_page=False)
    page.click(f'tr[data-trace="{train_id}"] button:has-text("Add as few-shot example")')
    page.wait_for_url(re.compile(rf"/projects/acme/judges/{judge.pk}/$"))
    assert f"v2 created with {train_id}" in page.inner_text(".messages")
    assert judge.versions.get(number=2).config["examples"] == [train_id]

    page.click("#v2 a.preview-link")
    page.fill('input[name="trace"]', "t-01")
    page.click(".preview-form button")
    page.wait_for_selector('.prompt-message[data-role="assistant"]')
    roles = page.eval_on_selector_all(".prompt-message", "els => els.map(e => e.dataset.role)")
    assert roles == ["system", "user", "assistant", "user"]
    # The expert's critique is the example's reasoning, shown as text (escaped), never as markup.
    assistant = page.inner_text('.prompt-message[data-role="assistant"] pre')
    assert f"<i>Critique</i> of {train_id}" in assistant
    assert page.locator(".prompt-message i").count() == 0
