"""Promotion in a real browser: a version under the bar shows why it cannot be promoted, the next one is promoted on
the judge page on its test run, the judges page badges it with its test and dev evidence, and the comparison of the
two versions reads as a verdict."""

from __future__ import annotations

import re

import pytest

from judges.models import Promotion
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_version_create
from tests.browser.conftest import login
from tests.factories import make_criterion, make_split_labels

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
EXACT = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
LOOSE = {"check": "contains", "value": "sorry,", "ignore_case": True, "must_contain": False}
SCREENSHOT = "/tmp/promotion-judge.png"
LIST_SCREENSHOT = "/tmp/promotion-judges.png"
COMPARE_SCREENSHOT = "/tmp/promotion-compare.png"


@pytest.fixture
def judge(project):
    criterion = make_criterion(project=project, name="no_apology", definition="Fail when the bot apologises.")
    # Labels placed by split, so what each version gets right on dev (and so the comparison) does not depend on
    # the split hash: v1 misses the ten "Sorry for this." fails on dev, v2 misses nothing.
    done, no, sorry, ok = ("Done.", "pass"), ("Sorry, no.", "fail"), ("Sorry for this.", "fail"), ("Ok.", "pass")
    make_split_labels(criterion=criterion, split="train", outputs=[done, no, sorry, ok] * 5, prefix="train")
    make_split_labels(criterion=criterion, split="dev", outputs=[done, no, sorry, ok] * 10, prefix="dev")
    # The test split needs dozens of labels of each class for the 95% lower bounds to clear the bar.
    make_split_labels(criterion=criterion, split="test", outputs=[done, no] * 40, prefix="test")
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=LOOSE)
    judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="dev"))
    v2 = judge_version_create(judge=judge, config=EXACT, comment="catch every apology")
    judge_run_execute(run=judge_run_create(version=v2, split="dev"))
    judge_run_execute(run=judge_run_create(version=v2, split="test"))
    return judge


def test_expert_promotes_on_the_judge_page_and_sees_the_badge_on_the_judges_page(page, live_server, judge):
    problems: list[str] = []
    # Failed requests are checked by status, because the browser's own /favicon.ico probe is an expected 404.
    page.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None,
    )
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 and "favicon" not in r.url else None,
    )
    page.on("pageerror", lambda error: problems.append(str(error)))

    login(page, live_server, "expert", f"/projects/acme/judges/{judge.pk}/")
    page.wait_for_selector("#promotion")
    assert "None promoted for no_apology" in page.inner_text("#promotion")
    assert "Iterate on dev, report test." in page.inner_text("#promotion")
    v1 = page.locator('.version-promotion[data-version="1"]')
    assert v1.locator("button").is_disabled()
    assert re.search(r"the bar is TPR ≥ 90% and TNR ≥ 90%", v1.inner_text())

    v2 = page.locator('.version-promotion[data-version="2"]')
    v2.locator('input[name="comment"]').fill("exact check, 100% on dev")
    v2.locator('button:has-text("Promote v2")').click()
    page.wait_for_selector('.version-promotion[data-version="2"] .badge.promoted')
    assert "apology v2 is now the promoted judge for no_apology." in page.inner_text(".messages")
    assert "★ apology v2" in page.inner_text("#promotion")
    page.screenshot(path=SCREENSHOT, full_page=True)
    promotion = Promotion.objects.get(ended_at=None)
    assert promotion.version.number == 2 and promotion.comment == "exact check, 100% on dev"

    page.click("text=← Judges")
    page.wait_for_selector(f'.criterion-promotion[data-criterion="{judge.criterion_id}"] .badge.promoted')
    badge = page.inner_text(f'.criterion-promotion[data-criterion="{judge.criterion_id}"]')
    assert "★ apology v2" in badge and "bar: TPR ≥ 90%, TNR ≥ 90%, met on test" in badge
    evidence = page.locator(f'table.promotion-evidence[data-promotion="{promotion.pk}"]')
    assert evidence.locator('tr[data-evidence="test"]').inner_text().startswith("test (the evidence)")
    page.screenshot(path=LIST_SCREENSHOT, full_page=True)

    page.goto(f"{live_server.url}/projects/acme/judges/{judge.pk}/")
    page.click('.version-promotion[data-version="2"] a.compare-link')
    page.wait_for_selector(".verdict-sentence")
    assert page.inner_text(".verdict-sentence").startswith("v2 agrees with the expert more often than v1: +")
    page.screenshot(path=COMPARE_SCREENSHOT, full_page=True)
    assert not problems, problems
