"""A review session in a real browser: create one from the form, start reviewing, and walk it with the keyboard."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from annotation.models import ReviewSession, ReviewSessionTrace, Trace
from tests.browser.conftest import login
from tests.factories import make_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_expert_creates_a_stratified_session_and_reviews_it_with_the_keyboard(page, live_server, project):
    for index in range(12):
        make_trace(
            project=project,
            external_id=f"t-{index:02d}",
            occurred_at=BASE + timedelta(minutes=index),
            metadata={"locale": "en" if index < 9 else "de"},
        )

    login(page, live_server, "expert", "/projects/acme/sessions/")
    page.wait_for_selector("#new-session")
    # The disagreements strategy is listed, but it starts from a judge run's page, and says so.
    assert page.is_disabled('input[name="strategy"][value="disagreements"]')
    assert "starts from a judge run" in page.inner_text("#disagreements-help")

    # A missing key is reported on the form, and nothing is created.
    page.check('input[name="strategy"][value="stratified"]')
    page.fill('input[name="size"]', "4")
    page.fill('input[name="metadata_key"]', "colour")
    page.click("#new-session button[type=submit]")
    page.wait_for_selector("text=No trace in this project has the metadata key “colour”")
    assert not ReviewSession.objects.exists()

    page.check('input[name="strategy"][value="stratified"]')
    page.fill('input[name="metadata_key"]', "locale")
    page.fill('input[name="name"]', "Locales")
    page.click("#new-session button[type=submit]")
    page.wait_for_url(re.compile(r"/projects/acme/sessions/\d+/$"))
    session = ReviewSession.objects.get()
    order = list(
        ReviewSessionTrace.objects.filter(session=session)
        .order_by("position")
        .values_list("trace__external_id", flat=True)
    )
    assert len(order) == 4
    assert sorted(Trace.objects.get(external_id=e).metadata["locale"] for e in order) == ["de", "de", "en", "en"]
    assert page.inner_text("#session-reviewed") == "0"

    page.click("#start-reviewing")
    page.wait_for_url(re.compile(rf"/traces/{order[0]}/\?order=random&session={session.pk}$"))
    page.wait_for_selector("#review[data-keyboard-ready]")
    assert "0 of 4 reviewed in this session" in page.inner_text("#queue-progress")

    # r marks reviewed and moves to the session's next trace; j skips ahead within the session.
    page.keyboard.press("r")
    page.wait_for_url(re.compile(rf"/traces/{order[1]}/\?order=random&session={session.pk}$"))
    assert "1 of 4 reviewed in this session" in page.inner_text("#queue-progress")
    page.keyboard.press("j")
    page.wait_for_url(re.compile(rf"/traces/{order[2]}/\?order=random&session={session.pk}$"))
    page.keyboard.press("k")
    page.wait_for_url(re.compile(rf"/traces/{order[0]}/\?order=random&session={session.pk}$"))

    page.goto(f"{live_server.url}/projects/acme/sessions/")
    assert "1 / 4" in page.inner_text("#sessions")
