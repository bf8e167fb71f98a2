"""The golden set in a real browser: an engineer files a trace from the review page with the keyboard, sees the
panel swap in place, and finds the trace on the golden-set page; then removes it there."""

from __future__ import annotations

import pytest

from suites.golden import golden_entries
from tests.browser.conftest import login
from tests.factories import make_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = "/tmp/golden.png"
PAGE_SCREENSHOT = "/tmp/golden-page.png"
PANEL_SCREENSHOT = "/tmp/golden-panel.png"


def test_engineer_adds_a_trace_from_the_review_page_and_finds_it_on_the_golden_page(page, live_server, project):
    make_trace(project=project, external_id="q-1", input="Where is <b>order</b> 42?")
    make_trace(project=project, external_id="q-2")

    login(page, live_server, "teammate", "/projects/acme/traces/q-1/")
    page.wait_for_selector("#review[data-keyboard-ready]")
    page.wait_for_selector("#golden-panel[data-in-golden='0']")

    # g focuses the reason; the comment's Enter submits through htmx, which swaps only the panel.
    page.keyboard.press("g")
    assert page.evaluate("document.activeElement.id") == "golden-reason"
    page.select_option("#golden-reason", "past_regression")
    page.fill("#golden-panel input[name=comment]", "Refund flow broke in 2.3")
    page.locator("#golden-panel").screenshot(path=PANEL_SCREENSHOT)
    page.evaluate("document.body.dataset.marker = 'same page'")
    page.press("#golden-panel input[name=comment]", "Enter")
    page.wait_for_selector("#golden-panel[data-in-golden='1']")
    assert "In golden set since v1 (past regression)" in page.inner_text("#golden-panel")
    assert page.evaluate("document.body.dataset.marker") == "same page"  # swapped in place, no reload
    page.screenshot(path=SCREENSHOT)

    page.click("nav.project-nav a:has-text('Golden set')")
    page.wait_for_url("**/projects/acme/golden/")
    table = page.inner_text("#golden-members")
    assert "q-1" in table and "Where is <b>order</b> 42?" in table and "Past regression" in table
    assert "Refund flow broke in 2.3" in table and "q-2" not in table
    assert "added q-1 (past regression)" in page.inner_text("#golden-history")
    page.screenshot(path=PAGE_SCREENSHOT, full_page=True)

    page.check("#golden-members input[name=trace]")
    page.click("button:has-text('Remove the ticked traces')")
    page.wait_for_selector("text=No traces in v2.")
    assert list(golden_entries(project=project)) == []
    assert [e.trace.external_id for e in golden_entries(project=project, version=1)] == ["q-1"]
