"""Coding notes in a real browser: the coding board's bulk action with its Pareto chart updating in place, the
charts on the failure-modes page, and the `m` picker on the review page driven by the keyboard alone."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from annotation.models import FailureMode, Note, NoteFailureMode
from tests.browser.conftest import login
from tests.factories import code_note, make_criterion, make_note, make_trace

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
NOTE_TEXTS = [
    "Promises a refund the policy does not allow",
    "Says refunds take 2 days; policy says 10",
    "Ignores the refund question entirely",
    "Gives last year's opening hours",
    "Quotes a delivery date in the past",
]


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 2_000  # a chart, not a blank pixel


def _bar_titles(page) -> list[str]:
    return page.locator("#pareto-chart rect.chart-bar title").all_text_contents()


def _modes_of(note) -> set[str]:
    return set(NoteFailureMode.objects.filter(note=note).values_list("failure_mode__name", flat=True))


def test_expert_codes_five_notes_on_the_board_and_the_chart_follows(page, live_server, project, expert, tmp_path):
    wrong_date = FailureMode.objects.create(project=project, name="Wrong date")
    seed = make_trace(project=project, reviewed_at=BASE)
    code_note(make_note(trace=seed, author=expert, text="Already coded"), wrong_date)
    notes = []
    for index, text in enumerate(NOTE_TEXTS):
        trace = make_trace(
            project=project, input=f"Customer question {index}", reviewed_at=BASE + timedelta(minutes=index + 1)
        )
        notes.append(make_note(trace=trace, author=expert, text=text))

    login(page, live_server, "expert", "/projects/acme/failure-modes/coding/")
    page.wait_for_url(re.compile(r"/failure-modes/coding/$"))
    page.wait_for_selector("body[data-coding-ready]")
    assert page.locator("tr.board-note").count() == 5
    assert page.locator("#pareto-chart rect.chart-bar").count() == 1
    assert _bar_titles(page) == ["Wrong date: 1 trace · 100.0% cumulative"]
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads instead of swapping

    # The three refund notes go to a new mode, created on the spot.
    for note in notes[:3]:
        page.check(f'#board-note-{note.pk} input[name="note"]')
    assert page.text_content("#selected-count") == "3 selected"
    page.fill("#board-new-mode", "Wrong refund policy")
    page.click("#code-selected")
    page.wait_for_selector("#board-status:has-text('Coded 3 notes to “Wrong refund policy” (new mode).')")
    assert page.locator("tr.board-note").count() == 2
    assert page.locator("#pareto-chart rect.chart-bar").count() == 2
    assert _bar_titles(page) == [
        "Wrong refund policy: 3 traces · 75.0% cumulative",
        "Wrong date: 1 trace · 100.0% cumulative",
    ]
    assert page.locator("#pareto-chart text.chart-label").all_text_contents() == ["Wrong refund policy", "Wrong date"]

    # The other two go to the existing mode: select all on the page, pick it in the select.
    page.check("[data-select-all]")
    assert page.text_content("#selected-count") == "2 selected"
    page.select_option("#board-mode", label="Wrong date")
    page.click("#code-selected")
    page.wait_for_selector("#board-status:has-text('Coded 2 notes to “Wrong date”.')")
    assert page.locator("tr.board-note").count() == 0
    assert page.locator("text=No uncoded notes").count() == 1
    assert _bar_titles(page) == [
        "Wrong date: 3 traces · 50.0% cumulative",
        "Wrong refund policy: 3 traces · 100.0% cumulative",
    ]
    assert page.evaluate("window.__sameDocument") is True

    refund = FailureMode.objects.get(project=project, name="Wrong refund policy")
    assert [_modes_of(note) for note in notes] == [{refund.name}] * 3 + [{"Wrong date"}] * 2
    shot = tmp_path / "pareto.png"
    page.locator("#pareto-chart").screenshot(path=str(shot))
    _assert_png(shot)

    # Ticking "also show coded notes" reloads the list in place, with each note's modes.
    page.check("#show-coded")
    page.wait_for_url(re.compile(r"/failure-modes/coding/\?q=&coded=1$"))
    page.wait_for_selector(f"#board-note-{notes[0].pk}")
    assert page.locator("tr.board-note").count() == 6
    assert page.locator(f"#board-note-{notes[4].pk} .mode-chip").all_text_contents() == ["Wrong date"]
    assert page.evaluate("window.__sameDocument") is True

    # A bar leads to that mode's traces.
    page.click(f'#pareto-chart a[href$="?mode={refund.pk}"] rect')
    page.wait_for_url(re.compile(rf"/traces/\?mode={refund.pk}$"))
    assert page.locator("#trace-results tbody tr").count() == 3

    # The failure-modes page draws both charts from the same numbers.
    page.goto(f"{live_server.url}/projects/acme/failure-modes/")
    assert page.locator("#pareto-chart rect.chart-bar").count() == 2
    assert page.locator("#saturation-chart path.chart-step").count() == 1
    assert "2 failure modes after 6 reviewed traces" in page.text_content("#saturation-title")
    for chart in ("pareto", "saturation"):
        shot = tmp_path / f"{chart}-page.png"
        page.locator(f"#{chart}-chart").screenshot(path=str(shot))
        _assert_png(shot)


def test_m_opens_the_picker_and_codes_the_note_with_the_keyboard_only(page, live_server, project, expert):
    make_criterion(project=project, name="factual")
    FailureMode.objects.create(project=project, name="Wrong date")
    FailureMode.objects.create(project=project, name="Wrong refund policy")
    FailureMode.objects.create(project=project, name="Retired one", retired_at=BASE)
    FailureMode.objects.create(project=project, name='<img src=x onerror="window.__xss=1">')
    trace = make_trace(project=project, external_id="q-1")
    first = make_note(trace=trace, author=expert, text="Quotes an old date")
    last = make_note(trace=trace, author=expert, text="And invents a refund rule")

    login(page, live_server, "expert", "/projects/acme/traces/q-1/")
    page.wait_for_selector("#review[data-keyboard-ready]")
    assert page.locator("#mode-picker").is_hidden()

    # m opens the picker on the newest note; type-ahead narrows the modes, Enter codes the highlighted one.
    page.keyboard.press("m")
    page.wait_for_selector("#mode-picker[data-ready]")
    assert page.locator("#mode-picker").is_visible()
    assert page.text_content("#mode-picker-note") == "And invents a refund rule"
    # Mode names are user text: shown literally, never parsed as markup.
    assert page.locator("#mode-picker-list li").all_text_contents() == [
        '<img src=x onerror="window.__xss=1">',
        "Wrong date",
        "Wrong refund policy",
    ]
    assert page.locator("#mode-picker img").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    page.keyboard.type("refund")
    assert page.locator("#mode-picker-list li").all_text_contents() == [
        "Wrong refund policy",
        "Create mode “refund”",
    ]
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#note-modes-{last.pk} .mode-chip-name:has-text('Wrong refund policy')")
    assert page.locator("#mode-picker").is_hidden()

    # A new name offers to create the mode; arrow keys reach the offer.
    page.keyboard.press("m")
    page.wait_for_selector("#mode-picker[data-ready]")
    page.keyboard.type("Invents policy")
    assert page.locator("#mode-picker-list li").all_text_contents() == ["Create mode “Invents policy”"]
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#note-modes-{last.pk} .mode-chip-name:has-text('Invents policy')")

    # Esc closes without coding anything.
    page.keyboard.press("m")
    page.wait_for_selector("#mode-picker[data-ready]")
    page.keyboard.type("Wrong date")
    page.keyboard.press("Escape")
    assert page.locator("#mode-picker").is_hidden()

    # Arrow keys pick among matches; the chip's × takes a mode off again.
    page.click(f"#note-{first.pk} .note-text")
    page.keyboard.press("m")
    page.wait_for_selector("#mode-picker[data-ready]")
    assert page.text_content("#mode-picker-note") == "Quotes an old date"
    page.keyboard.type("wrong")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    page.wait_for_selector(f"#note-modes-{first.pk} .mode-chip-name:has-text('Wrong refund policy')")

    assert _modes_of(last) == {"Wrong refund policy", "Invents policy"}
    assert _modes_of(first) == {"Wrong refund policy"}
    assert FailureMode.objects.filter(project=project, name="Invents policy").exists()

    page.click(f"#note-modes-{first.pk} .chip-remove")
    page.wait_for_selector(f"#note-modes-{first.pk} .mode-chip", state="detached")
    assert _modes_of(first) == set()

    # `m` is listed in the shortcuts overlay.
    page.keyboard.press("Shift+?")
    assert page.locator("#shortcuts kbd:text-is('m')").count() == 1


def _bar_counts(page) -> dict[str, int]:
    """Mode name → trace count, read from the bars' tooltips."""
    counts = {}
    for title in _bar_titles(page):
        match = re.match(r"(.+): (\d+) traces? · ", title)
        counts[match.group(1)] = int(match.group(2))
    return counts


def test_demo_expert_codes_demo_notes_on_the_board(page, live_server, settings):
    from django.core.management import call_command

    settings.DEBUG = True  # load_demo creates the demo login only with DEBUG on
    call_command("load_demo", stdout=io.StringIO())
    page.goto(f"{live_server.url}/accounts/login/?next=/projects/demo/failure-modes/coding/")
    page.fill('input[name="username"]', "demo")
    page.fill('input[name="password"]', "demo")
    page.click('button[type="submit"]')
    page.wait_for_url(re.compile(r"/projects/demo/failure-modes/coding/$"))
    page.wait_for_selector("body[data-coding-ready]")
    before = _bar_counts(page)
    assert before  # the demo file codes some of its notes
    rows = page.locator("tr.board-note")
    assert rows.count() >= 10

    # Five notes to a new mode: one more bar, named after it.
    picked = [int(rows.nth(i).get_attribute("id").removeprefix("board-note-")) for i in range(5)]
    for pk in picked:
        page.check(f'#board-note-{pk} input[name="note"]')
    page.fill("#board-new-mode", "Coded in the browser")
    page.click("#code-selected")
    page.wait_for_selector("#board-status:has-text('Coded 5 notes to “Coded in the browser” (new mode).')")
    after_new = _bar_counts(page)
    assert len(after_new) == len(before) + 1
    assert after_new["Coded in the browser"] == len({Note.objects.get(pk=pk).trace_id for pk in picked})
    assert all(page.locator(f"#board-note-{pk}").count() == 0 for pk in picked)

    # Five more to the demo's most frequent mode: its bar grows by the traces it did not have yet.
    top_mode = max(before, key=before.get)
    more = [int(rows.nth(i).get_attribute("id").removeprefix("board-note-")) for i in range(5)]
    for pk in more:
        page.check(f'#board-note-{pk} input[name="note"]')
    page.select_option("#board-mode", label=top_mode)
    page.click("#code-selected")
    page.wait_for_selector(f"#board-status:has-text('Coded 5 notes to “{top_mode}”.')")
    mode = FailureMode.objects.get(project__slug="demo", name=top_mode)
    expected = NoteFailureMode.objects.filter(failure_mode=mode).values("trace_id").distinct().count()
    assert _bar_counts(page)[top_mode] == expected > before[top_mode]
