"""The judges pages in a real browser: start a run, watch it progress on a real worker, read the report and the
disagreements."""

from __future__ import annotations

import re

import pytest

from judges.models import JudgeRun
from judges.services import judge_create
from tests.browser.conftest import login
from tests.factories import make_criterion, make_label, make_trace

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]
REFUSES_APOLOGY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
SCREENSHOT = "/tmp/judges-run.png"
LIST_SCREENSHOT = "/tmp/judges-list.png"


def test_expert_starts_a_run_watches_it_finish_and_reads_a_disagreement(page, live_server, project, request):
    criterion = make_criterion(project=project, name="no_apology", definition="Fail when the bot apologises.")
    for i in range(40):
        subtle, apologetic = i % 10 == 0, i % 4 == 0
        output = "We regret the <b>trouble</b>." if subtle else ("Sorry, no." if apologetic else "Done.")
        trace = make_trace(project=project, external_id=f"t-{i:02d}", input=f"Question {i}", output=output)
        critique = f"Apologises without saying sorry <i>({i})</i>" if subtle else ""
        make_label(
            trace=trace, criterion=criterion, verdict="fail" if subtle or apologetic else "pass", critique=critique
        )
    judge = judge_create(
        project=project, criterion=criterion, name="apology-check", kind="assertion", config=REFUSES_APOLOGY
    )
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    login(page, live_server, "expert", "/projects/acme/judges/")
    page.wait_for_url(re.compile(r"/projects/acme/judges/$"))
    page.wait_for_selector("text=Fail when the bot apologises.")
    form = page.locator(f"#judge-{judge.pk} form.run-form")
    form.locator('select[name="split"]').select_option("all")
    form.locator('button[type="submit"]').click()

    page.wait_for_url(re.compile(r"/projects/acme/judges/runs/\d+/$"))
    run = JudgeRun.objects.get()
    # No worker yet: the page shows the queued run and keeps polling.
    page.wait_for_selector('[data-status="queued"]')
    assert page.locator("#run-state[hx-trigger='every 1s']").count() == 1
    assert "0 of 40 traces judged" in page.inner_text("#run-state")

    request.getfixturevalue("celery_worker")  # now start a real worker; the polling page picks up its progress
    page.wait_for_selector('[data-status="done"]', timeout=30_000)
    state = page.locator("#run-state")
    assert state.get_attribute("hx-trigger") is None  # polling stopped
    assert "40 of 40 traces judged (100%)" in state.inner_text()
    assert page.locator("#run-state progress").get_attribute("value") == "100"
    run.refresh_from_db()
    assert run.status == "done"

    # The report: 4 subtle apologies (t-00, t-10, t-20, t-30) are false passes.
    report = run.report
    assert page.inner_text('[data-cell="fp"]') == str(report["fp"]) == "4"
    assert page.inner_text('[data-cell="tn"]') == str(report["tn"])
    assert page.locator("svg.metric-bar line.target").count() == 3  # the bar's lines: TPR, TNR, recall on fail
    assert "below 90%" in page.inner_text("#report h2")

    # The disagreements: escaped critique, the trace link, then the false-fail tab (empty) through htmx.
    row = page.locator('tr[data-trace="t-10"]')
    assert "Apologises without saying sorry <i>(10)</i>" in row.inner_text()
    assert row.locator("i").count() == 0
    assert row.locator("a").get_attribute("href") == "/projects/acme/traces/t-10/"
    page.screenshot(path=SCREENSHOT, full_page=True)
    page.click('#disagreements a[data-kind="false_fail"]')
    page.wait_for_selector('#disagreements a.active[data-kind="false_fail"]')
    assert page.locator("#disagreements tr[data-trace]").count() == 0
    assert "No disagreements of this kind" in page.inner_text("#disagreements")
    page.click('#disagreements a[data-kind="false_pass"]')
    page.wait_for_selector('#disagreements a.active[data-kind="false_pass"]')
    assert page.locator("#disagreements tr[data-trace]").count() == 4

    # Back on the judges page the finished run is the latest on "all".
    page.click("text=← Judges")
    page.wait_for_selector(f'#judge-{judge.pk} tr[data-split="all"] a')
    assert f"#{run.pk}" in page.inner_text(f'#judge-{judge.pk} tr[data-split="all"]')
    page.screenshot(path=LIST_SCREENSHOT, full_page=True)
    assert not [text for text in console if "Content Security Policy" in text]
