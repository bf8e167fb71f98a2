"""The failure-modes page in a real browser: filtering the counts through the form, and a bad value shown beside
its field."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from annotation.models import FailureMode
from tests.browser.conftest import login
from tests.factories import code_note, make_note, make_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_expert_filters_the_counts_by_source_and_sees_a_bad_date_named(page, live_server, project, expert):
    hallucination = FailureMode.objects.create(project=project, name="hallucination")
    tone = FailureMode.objects.create(project=project, name="tone")
    for i, source in enumerate(["production", "production", "staging"]):
        trace = make_trace(project=project, external_id=f"t{i}", source=source, reviewed_at=BASE)
        code_note(make_note(trace=trace, author=expert), hallucination, *([tone] if source == "staging" else []))

    login(page, live_server, "expert", "/projects/acme/failure-modes/")
    row = page.locator("tr", has_text="hallucination").first
    assert row.locator("td").nth(2).inner_text() == "3"
    assert page.locator(".co-occurrence td").first.inner_text() == "hallucination"

    page.fill('input[name="source"]', "production")
    page.click('.count-filters button[type="submit"]')
    page.wait_for_url("**/failure-modes/?source=production*")
    assert page.locator("tr", has_text="hallucination").first.locator("td").nth(2).inner_text() == "2"
    assert "Counting only traces from source production: 2 reviewed, 0 failing." in page.inner_text(".filtered-totals")
    assert page.locator("tr", has_text="tone").first.locator("td").nth(2).inner_text() == "0"

    page.fill('input[name="from"]', "2026-02-30")
    page.click('.count-filters button[type="submit"]')
    alert = page.locator(".count-filters [role=alert]")
    assert alert.inner_text() == "From: '2026-02-30' is not a date; write it as YYYY-MM-DD, e.g. 2026-11-01"
    assert page.input_value('input[name="from"]') == "2026-02-30"
    assert page.locator("table").count() == 0
