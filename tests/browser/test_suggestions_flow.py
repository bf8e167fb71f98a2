"""Suggested groupings in a real browser: start a run, watch it finish through the worker, accept one group edited
and with a note dropped, reject another — all through htmx with the CSP in force."""

from __future__ import annotations

import re

import pytest

from annotation.models import FailureMode, Suggestion
from tests.annotation.test_suggestions import write_notes
from tests.browser.conftest import login

pytestmark = [pytest.mark.browser, pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_expert_turns_a_suggested_group_into_a_failure_mode(page, live_server, celery_worker, project, expert):
    notes = write_notes(project, expert)
    problems: list[str] = []

    def on_console(message) -> None:
        # The browser's own favicon probe 404s on every page; anything else (CSP, scripts, styles) is a problem.
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            problems.append(f"{message.text} at {message.location.get('url')}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))

    login(page, live_server, "expert", "/projects/acme/failure-modes/")
    page.click("text=Suggest groupings of uncoded notes")
    page.fill('input[name="target_groups"]', "3")
    page.click('button:has-text("Suggest groupings")')
    page.wait_for_url(re.compile(r"/projects/acme/failure-modes/suggestions/\d+/$"))
    # The page polls until the worker is done, then swaps in the suggestions.
    page.wait_for_selector('#suggestion-run[data-status="done"]', timeout=60_000)
    assert page.locator("article.suggestion").count() == 3

    date_card = page.locator("article.suggestion", has_text=notes["date"][0].text)
    dropped = notes["date"][2]
    date_card.locator(f'input[name="note"][value="{dropped.pk}"]').uncheck()
    date_card.locator('input[name="name"]').fill("States wrong dates")
    date_card.locator('button:has-text("Accept as new mode")').click()
    page.wait_for_selector("text=Coded 4 notes to “States wrong dates”.")

    tool_card = page.locator("article.suggestion", has_text=notes["tool"][0].text)
    tool_card.locator('button:has-text("Reject")').click()
    page.wait_for_selector('article.suggestion[data-status="rejected"]')

    mode = FailureMode.objects.get(name="States wrong dates")
    assert set(mode.notes.values_list("pk", flat=True)) == {n.pk for n in notes["date"]} - {dropped.pk}
    assert sorted(Suggestion.objects.values_list("status", flat=True)) == ["accepted", "pending", "rejected"]
    assert problems == []
