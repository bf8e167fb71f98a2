"""The review page in a real browser: a keyboard-only review session, and untrusted trace text that must not run."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from annotation.models import Label, Note, Trace
from tests.browser.conftest import login
from tests.factories import make_agent_trace, make_criterion, make_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
SCREENSHOT = "/tmp/review.png"


def _press(page, *keys: str) -> None:
    for key in keys:
        page.keyboard.press(key)


def _wait_for_verdict(page, criterion, verdict: str) -> None:
    page.wait_for_selector(f'#verdict-{criterion.pk}[data-verdict="{verdict}"]')


def test_expert_reviews_three_traces_with_only_the_keyboard(page, live_server, project):
    factual = make_criterion(project=project, name="factual", definition="Every claim matches the sources.")
    tone = make_criterion(project=project, name="tone", definition="Friendly and concise.")
    make_agent_trace(
        project=project,
        external_id="q-0",
        occurred_at=BASE,
        source="production",
        context=["Order 42 shipped on Nov 2 via DHL."],
        metadata={"model": "gpt-x", "locale": "en"},
    )
    make_trace(project=project, external_id="q-1", occurred_at=BASE + timedelta(minutes=1), output="It is *42*.")
    make_trace(project=project, external_id="q-2", occurred_at=BASE + timedelta(minutes=2))
    make_trace(project=project, external_id="q-3", occurred_at=BASE + timedelta(minutes=3))

    login(page, live_server, "expert", "/projects/acme/review/?order=oldest")
    page.wait_for_url(re.compile(r"/projects/acme/traces/q-0/\?order=oldest$"))
    page.wait_for_selector("#review[data-keyboard-ready]")

    # Trace 1: pass "factual" with a critique, fail "tone" with a critique, add a note, move on.
    _press(page, "1", "p")
    _wait_for_verdict(page, factual, "pass")
    page.wait_for_selector(f'#criterion-{factual.pk} [data-verdict-button="pass"][aria-pressed="true"]')
    _press(page, "c")
    page.keyboard.type("Matches the tracking data.")
    _press(page, "Escape", "2", "f")
    _wait_for_verdict(page, tone, "fail")
    _press(page, "c")
    page.keyboard.type("Too curt for a support reply.")
    _press(page, "Escape", "n")
    page.keyboard.type("Never mentions the carrier")
    _press(page, "Control+Enter")
    page.wait_for_selector("#notes .note-text:has-text('Never mentions the carrier')")
    page.wait_for_selector(f"#verdict-{tone.pk} .status-saved")
    page.screenshot(path=SCREENSHOT)
    _press(page, "j")
    page.wait_for_url(re.compile(r"/traces/q-1/\?order=oldest$"))

    # Trace 2: the critique comes first; it waits for a verdict instead of being lost.
    _press(page, "c")
    page.keyboard.type("Gives a number without a source.")
    _press(page, "Escape")
    page.wait_for_selector(f"#verdict-{factual.pk} .status-unsaved:has-text('Choose pass or fail')")
    _press(page, "f")
    _wait_for_verdict(page, factual, "fail")
    _press(page, "j")
    page.wait_for_url(re.compile(r"/traces/q-2/\?order=oldest$"))

    # Trace 3: only the second criterion and a note.
    _press(page, "2", "p")
    _wait_for_verdict(page, tone, "pass")
    _press(page, "n")
    page.keyboard.type("Fine answer")
    _press(page, "Control+Enter")
    page.wait_for_selector("#notes .note-text:has-text('Fine answer')")
    _press(page, "j")
    page.wait_for_url(re.compile(r"/traces/q-3/\?order=oldest$"))

    # k walks back through what was just reviewed.
    _press(page, "k")
    page.wait_for_url(re.compile(r"/traces/q-2/\?order=oldest$"))

    labels = {
        (label.trace.external_id, label.criterion.name): (label.verdict, label.critique)
        for label in Label.objects.select_related("trace", "criterion")
    }
    assert labels == {
        ("q-0", "factual"): ("pass", "Matches the tracking data."),
        ("q-0", "tone"): ("fail", "Too curt for a support reply."),
        ("q-1", "factual"): ("fail", "Gives a number without a source."),
        ("q-2", "tone"): ("pass", ""),
    }
    notes = list(Note.objects.order_by("id").values_list("trace__external_id", "author__username", "text"))
    assert notes == [("q-0", "expert", "Never mentions the carrier"), ("q-2", "expert", "Fine answer")]
    reviewed = list(
        Trace.objects.filter(reviewed_at__isnull=False).order_by("reviewed_at").values_list("external_id", flat=True)
    )
    assert reviewed == ["q-0", "q-1", "q-2"]


def test_shortcuts_overlay_opens_with_question_mark_and_closes_with_escape(page, live_server, project):
    make_trace(project=project, external_id="only")
    login(page, live_server, "expert", "/projects/acme/traces/only/")
    page.wait_for_selector("#review[data-keyboard-ready]")
    assert page.locator("#shortcuts").is_hidden()
    _press(page, "Shift+?")
    assert page.locator("#shortcuts").is_visible()
    _press(page, "Escape")
    assert page.locator("#shortcuts").is_hidden()


XSS = [
    "<script>window.__xss=1</script>",
    '<img src=x onerror="window.__xss=1">',
    "[click](javascript:window.__xss=1)",
    '<svg onload="window.__xss=1"></svg>',
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[alert](javascript:alert(1))",
    '<a href="javascript:window.__xss=1">raw link</a>',
    '<iframe src="javascript:window.__xss=1"></iframe>',
]


def test_untrusted_trace_content_never_runs_in_the_browser(page, live_server, project):
    payload = "\n\n".join(XSS)
    make_trace(
        project=project,
        external_id="xss",
        input=payload,
        output=payload,
        source="<svg onload=window.__xss=1>",
        context=[payload, {"text": payload}],
        metadata={"note": payload, '<img src=x onerror="window.__xss=1">': payload, "nested": {"x": payload}},
        messages=[
            {"role": "system", "content": payload},
            {"role": "user", "content": payload},
            {
                "role": "assistant",
                "content": payload,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "<img src=x onerror=window.__xss=1>", "arguments": payload},
                    },
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"q": payload})},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": payload},
            {"role": "assistant", "content": payload},
        ],
    )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    login(page, live_server, "expert", "/projects/acme/traces/xss/")
    page.wait_for_selector("#review[data-keyboard-ready]")
    # Open every collapsed region so their contents are in the rendered, visible DOM too.
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    for link in page.locator('a[href^="javascript" i]').all():
        link.click()
    page.wait_for_timeout(300)
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []
    # The payloads are there as text, and no element from them made it into the DOM.
    assert page.locator("text=window.__xss=1").count() > 0
    assert page.locator("img").count() == 0
    assert page.locator("svg").count() == 0
    assert page.locator("iframe").count() == 0
    assert page.locator('a[href^="javascript" i]').count() == 0
    own_scripts = page.evaluate("Array.from(document.scripts).map(s => s.src.replace(location.origin, ''))")
    assert all(src.startswith("/static/") for src in own_scripts) and len(own_scripts) == 2

    # The trace list shows the same title and stays inert.
    page.goto(f"{live_server.url}/projects/acme/traces/")
    page.wait_for_selector("#trace-results")
    assert page.evaluate("typeof window.__xss") == "undefined"
    assert dialogs == []
