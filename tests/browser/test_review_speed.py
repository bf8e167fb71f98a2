"""Review at the speed of thought, in a real browser: the next trace is fetched ahead and swapped in place on `r`
and `j`, with the URL, Back and Forward, the keyboard and the `opened` token right; a label made just before
leaving is stored; a prefetch uses up no queue step and a due blind re-review is never replaced by the page ahead.
Behaviour only: the timing lives in bench/review_speed.py."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from importlib import import_module

import pytest
from django.conf import settings
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from annotation.models import Label, SelfReview, Trace
from annotation.views.review import PREFETCH_HEADER, SWAP_HEADER
from judges.review_sessions import disagreement_session_create
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.browser.conftest import login
from tests.factories import make_criterion, make_label, make_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
OPENED_SALT = "annotation.sittings.opened"
EARLIER = "An earlier critique the blind page must never show."


def _traces(project, n: int = 3) -> list[Trace]:
    return [
        make_trace(project=project, external_id=f"q-{i}", occurred_at=BASE + timedelta(minutes=i), output=f"Answer {i}")
        for i in range(n)
    ]


def _ready(page, external_id: str) -> None:
    page.wait_for_selector(f'#review[data-trace-id="{external_id}"][data-keyboard-ready]')


def _ahead(page, external_id: str) -> None:
    """Wait until the page of `external_id` holds the next trace's page, fetched ahead."""
    page.wait_for_selector(f'#review[data-trace-id="{external_id}"][data-prefetched]')
    # A mark that survives only as long as this document does: a swap keeps it, a page load loses it.
    page.evaluate("window.__sameDocument = true")


def _same_document(page) -> bool:
    return page.evaluate("window.__sameDocument === true")


def test_mark_reviewed_swaps_in_the_prefetched_trace_with_url_history_and_a_fresh_token(page, live_server, project):
    factual = make_criterion(project=project, name="factual")
    _traces(project)
    login(page, live_server, "expert", "/projects/acme/review/?order=oldest")
    page.wait_for_url(re.compile(r"/traces/q-0/\?order=oldest$"))
    _ahead(page, "q-0")

    before_key = time.time()
    page.keyboard.press("r")
    _ready(page, "q-1")
    assert page.url.endswith("/projects/acme/traces/q-1/?order=oldest")
    page.wait_for_selector("#review[data-confirmed]")
    assert _same_document(page), "the next trace was a full page load, not the prefetched page"
    assert page.title().startswith("q-1")
    # The token counts from when the trace was shown: issued after the key, not when the page was prefetched.
    opened = float(signing.loads(page.input_value("#opened-at"), salt=OPENED_SALT))
    assert opened >= before_key
    # The progress bar is the one after this step, not the one rendered with the page ahead.
    assert page.inner_text("#queue-progress .meter-label strong") == "1"
    assert Trace.objects.get(external_id="q-0").reviewed_at is not None

    # The keyboard works on the swapped page, and its label records the time since it was shown.
    page.keyboard.press("f")
    page.wait_for_selector(f'#verdict-{factual.pk}[data-verdict="fail"] .status-saved')
    label = Label.objects.get(trace__external_id="q-1", criterion=factual)
    assert label.verdict == "fail"
    change = label.changes.get()
    assert change.seconds_on_trace is not None and change.seconds_on_trace <= time.time() - before_key + 0.1

    # The swapped page prefetches the one after it; j swaps that in too.
    _ahead(page, "q-1")
    page.keyboard.press("j")
    _ready(page, "q-2")
    assert page.url.endswith("/traces/q-2/?order=oldest") and _same_document(page)

    # Back and Forward show the trace the URL names.
    page.go_back()
    page.wait_for_url(re.compile(r"/traces/q-1/\?order=oldest$"))
    _ready(page, "q-1")
    assert page.locator(f'#verdict-{factual.pk}[data-verdict="fail"]').count() == 1
    page.go_back()
    page.wait_for_url(re.compile(r"/traces/q-0/\?order=oldest$"))
    _ready(page, "q-0")
    page.go_forward()
    page.wait_for_url(re.compile(r"/traces/q-1/\?order=oldest$"))
    _ready(page, "q-1")

    # The help overlay toggles once per key: the script runs once, not once per swap.
    _ahead(page, "q-1")
    page.keyboard.press("j")
    _ready(page, "q-2")
    page.keyboard.press("Shift+?")
    assert page.locator("#shortcuts").is_visible()


def test_a_label_made_just_before_leaving_is_stored(page, live_server, project):
    factual = make_criterion(project=project, name="factual")
    tone = make_criterion(project=project, name="tone")
    _traces(project, 4)
    login(page, live_server, "expert", "/projects/acme/traces/q-0/?order=oldest")
    _ahead(page, "q-0")
    # A verdict and at once r: the step waits for the save.
    page.keyboard.press("f")
    page.keyboard.press("r")
    _ready(page, "q-1")

    # A critique typed, left with Escape (its save starts on blur) and at once j.
    _ahead(page, "q-1")
    page.keyboard.press("2")
    page.keyboard.press("p")
    page.keyboard.press("c")
    page.keyboard.type("Warm and short.")
    page.keyboard.press("Escape")
    page.keyboard.press("j")
    _ready(page, "q-2")

    # Without a page ahead (prefetch switched off), the ordinary page load waits for the save as well.
    page.evaluate("localStorage.setItem('evalstudio.prefetch', 'off')")
    page.reload()
    _ready(page, "q-2")
    page.keyboard.press("p")
    page.keyboard.press("r")
    _ready(page, "q-3")

    labels = {
        (label.trace.external_id, label.criterion.name): (label.verdict, label.critique)
        for label in Label.objects.select_related("trace", "criterion")
    }
    assert labels == {
        ("q-0", "factual"): ("fail", ""),
        ("q-1", "tone"): ("pass", "Warm and short."),
        ("q-2", "factual"): ("pass", ""),
    }
    assert factual.pk != tone.pk


def _session_value(page, key: str):
    cookie = next(c for c in page.context.cookies() if c["name"] == settings.SESSION_COOKIE_NAME)
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key=cookie["value"])
    return store.get(key)


def test_prefetch_uses_no_queue_step_and_a_due_rereview_is_shown_instead_of_the_page_ahead(page, live_server, project):
    criterion = make_criterion(project=project, name="factual")
    old = make_trace(project=project, external_id="old", occurred_at=BASE - timedelta(days=30), output="Old answer")
    make_label(trace=old, criterion=criterion, verdict="fail", critique=EARLIER)
    Label.objects.filter(trace=old).update(updated_at=timezone.now() - timedelta(days=30))
    Trace.objects.filter(pk=old.pk).update(reviewed_at=timezone.now() - timedelta(days=30))
    _traces(project)
    # Every queue step re-serves an old trace.
    type(project).objects.filter(pk=project.pk).update(rereview_rate=1.0)
    key = f"review_steps:{project.pk}"

    login(page, live_server, "expert", "/projects/acme/traces/q-0/?order=oldest")
    _ahead(page, "q-0")
    assert not _session_value(page, key), "fetching the page ahead used up a queue step"
    # This step may draw a re-review, so the page waits for the server instead of showing the page ahead at once.
    assert page.get_attribute("#review", "data-rereview-next") == "1"

    page.keyboard.press("r")
    page.wait_for_url(re.compile(rf"/projects/acme/rereview/{old.pk}/\?next="))
    assert not _same_document(page)
    assert _session_value(page, key) == 1
    assert EARLIER not in page.content()
    assert not SelfReview.objects.exists()


def test_disagreement_session_pages_are_never_fetched_ahead(page, live_server, project, expert, client):
    criterion = make_criterion(project=project, name="no_apology", definition="Fail when the reply apologises.")
    traces = [
        make_trace(project=project, external_id="d-1", output="We regret the delay."),
        make_trace(project=project, external_id="d-2", output="We regret that, truly."),
    ]
    for trace in traces:
        make_label(trace=trace, criterion=criterion, verdict="fail", critique=EARLIER)
        Trace.objects.filter(pk=trace.pk).update(reviewed_at=trace.created_at)
    judge = judge_create(
        project=project,
        criterion=criterion,
        name="apology",
        kind="assertion",
        config={"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False},
    )
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    session = disagreement_session_create(run=run, created_by=expert)

    ahead: list[str] = []
    page.on("request", lambda req: ahead.append(req.url) if PREFETCH_HEADER.lower() in req.headers else None)
    login(page, live_server, "expert", f"/projects/acme/traces/d-1/?order=random&session={session.pk}")
    _ready(page, "d-1")
    assert page.get_attribute("#review", "data-prefetch") == "0"
    page.keyboard.press("Shift+?")  # a round trip through the page's own script: it has run and settled
    assert ahead == []

    # And the server refuses such a page to a prefetch, whatever the client does.
    client.force_login(expert)
    url = reverse("trace_detail", args=["acme", "d-2"]) + f"?order=random&session={session.pk}"
    response = client.get(url, headers={PREFETCH_HEADER: "1"})
    assert response.status_code == 204 and response.content == b""
    assert EARLIER not in client.get(url).content.decode()
    # A swap answer is only a location and a token: no trace text.
    step = client.get(
        reverse("trace_next", args=["acme", traces[0].pk]) + f"?order=random&session={session.pk}",
        headers={SWAP_HEADER: "1"},
    )
    assert step.status_code == 200 and "/traces/" in step["X-Review-Location"]
    assert "regret" not in step.content.decode() and EARLIER not in step.content.decode()
