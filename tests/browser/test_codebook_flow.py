"""The page of one failure mode in a real browser: htmx edits swap the page in place under the app's CSP."""

from __future__ import annotations

import pytest

from annotation.codebook import failure_mode_create
from annotation.models import FailureMode, NoteFailureMode
from tests.browser.conftest import login
from tests.factories import code_note, make_note, make_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = "/tmp/codebook.png"


def test_expert_renames_splits_and_merges_a_mode_without_reloading(page, live_server, project, expert):
    mode = failure_mode_create(project=project, name="Hallucination", definition="Makes things up.", actor=expert)
    target = failure_mode_create(project=project, name="Wrong facts", actor=expert)
    notes = [
        code_note(make_note(trace=make_trace(project=project), author=expert, text=f"<i>note {i}</i>"), mode)
        for i in range(3)
    ]
    problems: list[str] = []
    # CSP refusals and script errors show up as console errors; failed requests are checked by status instead,
    # because the browser's own /favicon.ico probe is an expected 404.
    page.on(
        "console",
        lambda m: problems.append(m.text) if m.type == "error" and "Failed to load resource" not in m.text else None,
    )
    page.on(
        "response",
        lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400 and "favicon" not in r.url else None,
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())  # the merge asks for confirmation

    path = f"/projects/acme/failure-modes/{mode.pk}/"
    login(page, live_server, "expert", path)
    page.wait_for_selector("#mode-page h1")
    assert page.inner_text(".notes-table").count("<i>note") == 3  # shown as text, not markup
    page.evaluate("window.__stillHere = true")

    page.fill('input[name="name"]', "Invented facts")
    page.click('button:has-text("Rename")')
    page.wait_for_selector('#mode-page h1:has-text("Invented facts")')
    assert page.evaluate("window.__stillHere") is True  # swapped in place, not a full page load

    page.check(f'input[name="note"][value="{notes[0].pk}"]')
    page.check(f'input[name="note"][value="{notes[1].pk}"]')
    page.fill('input[name="new_name"]', "Made-up numbers")
    page.click('button:has-text("Split")')
    page.wait_for_selector("text=the new failure mode “Made-up numbers”")
    split_off = FailureMode.objects.get(project=project, name="Made-up numbers")
    assert set(NoteFailureMode.objects.filter(failure_mode=split_off).values_list("note_id", flat=True)) == {
        notes[0].pk,
        notes[1].pk,
    }
    assert page.locator('.notes-table input[name="note"]').count() == 1
    page.screenshot(path=SCREENSHOT, full_page=True)

    page.select_option('select[name="target"]', str(target.pk))
    page.click('button:has-text("Merge")')
    page.wait_for_selector("#mode-page .badge-retired")
    assert "merged into" in page.inner_text(".retired-note")
    assert NoteFailureMode.objects.filter(failure_mode=target, note=notes[2]).exists()
    assert page.evaluate("window.__stillHere") is True
    assert not problems, problems
