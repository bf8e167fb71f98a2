"""Coding notes to failure modes: the coding board (filter, keyset pages, bulk assign, bad input, access, CSRF),
the chips and picker endpoints of the review page, and the charts on the failure-modes page."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotation.models import FailureMode, FailureModeChange, Note, NoteFailureMode, Project, Role
from tests.factories import add_member, code_note, make_note, make_project, make_trace, make_user

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}
BOARD = reverse("coding_board", args=["acme"])
ASSIGN = reverse("coding_assign", args=["acme"])


@pytest.fixture
def viewer_client(project: Project) -> Client:
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def notes_on(project: Project, author, *texts: str) -> list[Note]:
    """One trace per note, created in order (so later notes are newer)."""
    return [make_note(trace=make_trace(project=project), author=author, text=text) for text in texts]


def mode(project: Project, name: str, *, retired: bool = False) -> FailureMode:
    return FailureMode.objects.create(project=project, name=name, retired_at=timezone.now() if retired else None)


def board_note_ids(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'id="board-note-(\d+)"', html)]


def links() -> set[tuple[int, int, int]]:
    return set(NoteFailureMode.objects.values_list("note_id", "failure_mode_id", "trace_id"))


# The board ------------------------------------------------------------------------------------------------------


def test_board_lists_only_uncoded_notes_of_the_project_newest_first(expert_client, project, expert):
    first, second, third = notes_on(project, expert, "first", "second", "third")
    code_note(second, mode(project, "Wrong date"))
    other = make_project(slug="other", expert=expert)
    notes_on(other, expert, "elsewhere")
    response = expert_client.get(BOARD)
    assert response.status_code == 200
    html = response.content.decode()
    assert board_note_ids(html) == [third.pk, first.pk]
    assert "elsewhere" not in html
    assert "2 uncoded notes" in " ".join(html.split())
    # Each note links to its trace, with the trace's title.
    assert f"/projects/acme/traces/{third.trace.external_id}/#note-{third.pk}" in html
    assert third.trace.display_title in html


def test_show_coded_toggle_lists_coded_notes_with_their_modes(expert_client, project, expert):
    first, second = notes_on(project, expert, "first", "second")
    code_note(second, mode(project, "Wrong date"), mode(project, "Rude tone"))
    html = expert_client.get(BOARD, {"coded": "1"}).content.decode()
    assert board_note_ids(html) == [second.pk, first.pk]
    row = html[html.index(f'id="board-note-{second.pk}"') :]
    row = row[: row.index("</tr>")]
    assert re.findall(r'class="mode-chip">([^<]+)<', row) == ["Rude tone", "Wrong date"]


def test_text_filter_is_a_case_insensitive_contains_with_literal_wildcards(expert_client, project, expert):
    refund, _, percent, underscore = notes_on(
        project, expert, "Wrong REFUND amount", "Rude tone", "Says 100% sure", "uses snake_case"
    )
    html = expert_client.get(BOARD, {"q": "refund"}).content.decode()
    assert board_note_ids(html) == [refund.pk]
    assert "Uncoded notes containing “refund”, newest first" in " ".join(html.split())
    assert board_note_ids(expert_client.get(BOARD, {"q": "  Refund  "}).content.decode()) == [refund.pk]
    assert board_note_ids(expert_client.get(BOARD, {"q": "%"}).content.decode()) == [percent.pk]
    assert board_note_ids(expert_client.get(BOARD, {"q": "e_c"}).content.decode()) == [underscore.pk]
    # A NUL in any query parameter is refused before the view (issue 12: a 400 naming it, for every page alike).
    refused = expert_client.get(BOARD + "?q=ref%00und")
    assert refused.status_code == 400 and "query parameter q: contains a NUL character" in refused.content.decode()
    html = expert_client.get(BOARD, {"q": "nothing like it"}).content.decode()
    assert board_note_ids(html) == [] and "No notes match" in html


def test_an_overlong_filter_is_cut_with_a_message(expert_client, project, expert):
    notes_on(project, expert, "x" * 300)
    html = expert_client.get(BOARD, {"q": "x" * 250}).content.decode()
    assert "The text filter is limited to 200 characters" in html
    assert len(board_note_ids(html)) == 1


def test_keyset_pages_walk_forward_and_back_without_offset(expert_client, project, expert):
    trace = make_trace(project=project)
    notes = [make_note(trace=trace, author=expert, text=f"note {i}") for i in range(120)]
    newest_first = [note.pk for note in reversed(notes)]
    with CaptureQueriesContext(connection) as queries:
        first = expert_client.get(BOARD).content.decode()
    assert not any("OFFSET" in q["sql"].upper() for q in queries.captured_queries)
    assert board_note_ids(first) == newest_first[:50]
    assert "120 uncoded notes" in " ".join(first.split())
    next_url = re.search(r'rel="next" href="([^"]+)"', first).group(1).replace("&amp;", "&")
    second = expert_client.get(next_url).content.decode()
    assert board_note_ids(second) == newest_first[50:100]
    third_url = re.search(r'rel="next" href="([^"]+)"', second).group(1).replace("&amp;", "&")
    third = expert_client.get(third_url).content.decode()
    assert board_note_ids(third) == newest_first[100:]
    assert 'rel="next"' not in third
    back_url = re.search(r'rel="prev" href="([^"]+)"', third).group(1).replace("&amp;", "&")
    assert board_note_ids(expert_client.get(back_url).content.decode()) == newest_first[50:100]
    # A filter rides along in the page links.
    filtered = expert_client.get(BOARD, {"q": "NOTE"}).content.decode()
    assert "q=NOTE&amp;after=" in re.search(r'rel="next" href="([^"]+)"', filtered).group(1)


def test_board_queries_do_not_grow_with_the_page(expert_client, project, expert, django_assert_max_num_queries):
    for i in range(3):
        code_note(make_note(trace=make_trace(project=project), author=expert), mode(project, f"m{i}"))
    notes_on(project, expert, *[f"n{i}" for i in range(3)])
    with CaptureQueriesContext(connection) as small:
        expert_client.get(BOARD, {"coded": "1"})
    notes_on(project, expert, *[f"more {i}" for i in range(60)])
    with django_assert_max_num_queries(len(small.captured_queries)):
        html = expert_client.get(BOARD, {"coded": "1"}).content.decode()
    assert len(board_note_ids(html)) == 50


def test_board_shows_the_pareto_chart_with_links_to_each_modes_traces(expert_client, project, expert):
    wrong = mode(project, "Wrong date")
    for note in notes_on(project, expert, "a", "b"):
        code_note(note, wrong)
    html = expert_client.get(BOARD).content.decode()
    assert html.count('class="chart-bar"') == 1
    assert f'href="/projects/acme/traces/?mode={wrong.pk}"' in html


# Bulk assign ----------------------------------------------------------------------------------------------------


def test_bulk_assign_to_an_existing_mode_updates_list_and_chart_in_one_htmx_answer(expert_client, project, expert):
    a, b, c = notes_on(project, expert, "a", "b", "c")
    wrong = mode(project, "Wrong date")
    response = expert_client.post(ASSIGN, {"note": [a.pk, c.pk], "mode": wrong.pk}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert html.lstrip().startswith('<div id="coding-board"')  # the partial, not the page
    assert "Coded 2 notes to “Wrong date”." in html
    assert board_note_ids(html) == [b.pk]
    assert html.count('class="chart-bar"') == 1
    assert "2 traces" in html  # the bar's tooltip
    assert links() == {(a.pk, wrong.pk, a.trace_id), (c.pk, wrong.pk, c.trace_id)}


def test_bulk_assign_to_a_new_mode_creates_it_with_history(expert_client, project, expert):
    a, b = notes_on(project, expert, "a", "b")
    response = expert_client.post(
        ASSIGN, {"note": [a.pk, b.pk], "mode": "", "new_mode": "  Ignores   refunds "}, **HTMX
    )
    html = response.content.decode()
    created = FailureMode.objects.get(project=project)
    assert created.name == "Ignores refunds"
    assert "Coded 2 notes to “Ignores refunds” (new mode)." in html
    assert links() == {(a.pk, created.pk, a.trace_id), (b.pk, created.pk, b.trace_id)}
    change = FailureModeChange.objects.get(failure_mode=created)
    assert change.action == FailureModeChange.Action.CREATED and change.actor == expert
    # The new mode is in the picker of the re-rendered board.
    assert f'<option value="{created.pk}">Ignores refunds</option>' in html


def test_assigning_already_coded_notes_says_so_and_writes_no_duplicates(expert_client, project, expert):
    a, b = notes_on(project, expert, "a", "b")
    wrong = mode(project, "Wrong date")
    code_note(a, wrong)
    html = expert_client.post(ASSIGN, {"note": [a.pk, b.pk], "mode": wrong.pk}, **HTMX).content.decode()
    assert "Coded 1 note to “Wrong date”; 1 already had it." in html
    assert NoteFailureMode.objects.count() == 2


def test_plain_form_post_redirects_back_to_the_same_filtered_page(expert_client, project, expert):
    (a,) = notes_on(project, expert, "refund wrong")
    wrong = mode(project, "Wrong date")
    response = expert_client.post(ASSIGN + "?q=refund&coded=1", {"note": [a.pk], "mode": wrong.pk})
    assert response.status_code == 302
    assert response["Location"] == BOARD + "?q=refund&coded=1"
    page = expert_client.get(response["Location"]).content.decode()
    assert "Coded 1 note to “Wrong date”." in page
    assert links() == {(a.pk, wrong.pk, a.trace_id)}


def test_engineer_may_code_notes(teammate_client, project, expert):
    (a,) = notes_on(project, expert, "a")
    wrong = mode(project, "Wrong date")
    assert teammate_client.post(ASSIGN, {"note": [a.pk], "mode": wrong.pk}, **HTMX).status_code == 200
    assert links() == {(a.pk, wrong.pk, a.trace_id)}


# Bad input: a clear message, nothing written ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("post", "message"),
    [
        ({"mode": "WRONG"}, "Select at least one note to code."),
        ({"note": ["A"], "mode": " "}, "Pick a failure mode, or name a new one"),
        ({"note": ["A"], "mode": "999999"}, "Failure mode “999999” does not exist in this project."),
        ({"note": ["A"], "mode": "abc"}, "Failure mode “abc” does not exist in this project."),
        ({"note": ["A"], "mode": "OTHER"}, "does not exist in this project."),
        ({"note": ["A"], "mode": "RETIRED"}, "is retired"),
        ({"note": ["A"], "mode": "WRONG", "new_mode": "Also new"}, "not both"),
        ({"note": ["A"], "new_mode": "wrong DATE"}, "already exists in this project"),
        ({"note": ["A"], "new_mode": "x" * 201}, "limited to 200 characters"),
        ({"note": ["A"], "new_mode": "bad\x00name"}, "cannot contain NUL characters"),
        ({"note": ["A", "FOREIGN"], "mode": "WRONG"}, "not found in this project."),
        ({"note": ["A", "x1"], "mode": "WRONG"}, "“x1” is not a note id."),
        ({"note": ["A", "999999"], "mode": "WRONG"}, "Note 999999 not found in this project."),
    ],
)
def test_bad_bulk_input_is_a_clear_message_and_writes_nothing(expert_client, project, expert, post, message):
    (a,) = notes_on(project, expert, "a")
    other = make_project(slug="other", expert=expert)
    (foreign,) = notes_on(other, expert, "foreign")
    ids = {
        "A": a.pk,
        "FOREIGN": foreign.pk,
        "WRONG": mode(project, "Wrong date").pk,
        "RETIRED": mode(project, "Old", retired=True).pk,
        "OTHER": mode(other, "Theirs").pk,
    }
    data = {
        key: [str(ids.get(v, v)) for v in value] if isinstance(value, list) else str(ids.get(value, value))
        for key, value in post.items()
    }
    modes_before = FailureMode.objects.count()
    response = expert_client.post(ASSIGN, data, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    error = re.search(r'id="board-error"[^>]*>([^<]*)<', html).group(1)
    assert message in error
    assert NoteFailureMode.objects.count() == 0
    assert FailureMode.objects.count() == modes_before
    # The selection survives the error, so fixing the choice is one more click.
    if str(a.pk) in data.get("note", []):
        assert f'value="{a.pk}" aria-label="Select note {a.pk}" checked' in html


def test_bad_plain_form_post_is_a_400_page_with_the_message(expert_client, project, expert):
    notes_on(project, expert, "a")
    response = expert_client.post(ASSIGN, {"mode": "1"})
    assert response.status_code == 400
    assert "Select at least one note to code." in response.content.decode()
    assert "<html" in response.content.decode()


def test_too_many_selected_notes_are_refused(expert_client, project, expert):
    html = expert_client.post(ASSIGN, {"note": [str(i) for i in range(1, 502)], "mode": "1"}, **HTMX).content.decode()
    assert "Select at most 500 notes at a time (501 were selected)." in html


def test_only_post_assigns(expert_client, project):
    assert expert_client.get(ASSIGN).status_code == 405


# Access and CSRF ------------------------------------------------------------------------------------------------


def _note_urls(note: Note, failure_mode: FailureMode) -> list[str]:
    return [
        reverse("note_mode_assign", args=["acme", note.pk]),
        reverse("note_mode_create", args=["acme", note.pk]),
        reverse("note_mode_remove", args=["acme", note.pk, failure_mode.pk]),
    ]


def test_outsider_gets_404_on_every_coding_page_and_post(outsider_client, project, expert):
    (a,) = notes_on(project, expert, "a")
    wrong = mode(project, "Wrong date")
    assert outsider_client.get(BOARD).status_code == 404
    assert outsider_client.get(reverse("failure_mode_choices", args=["acme"])).status_code == 404
    assert outsider_client.post(ASSIGN, {"note": [a.pk], "mode": wrong.pk}).status_code == 404
    for url in _note_urls(a, wrong):
        assert outsider_client.post(url, {"mode": wrong.pk, "name": "x"}).status_code == 404
    assert NoteFailureMode.objects.count() == 0
    assert FailureMode.objects.count() == 1


def test_anonymous_is_sent_to_login(client, project):
    response = client.get(BOARD)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_viewer_sees_the_board_read_only_and_gets_403_on_writes(viewer_client, project, expert):
    (a,) = notes_on(project, expert, "a")
    wrong = mode(project, "Wrong date")
    code_note(make_note(trace=a.trace, author=expert, text="coded"), wrong)
    html = viewer_client.get(BOARD).content.decode()
    assert board_note_ids(html) == [a.pk]
    assert 'name="note"' not in html and "Code selected notes" not in html
    assert viewer_client.post(ASSIGN, {"note": [a.pk], "mode": wrong.pk}, **HTMX).status_code == 403
    for url in _note_urls(a, wrong):
        assert viewer_client.post(url, {"mode": wrong.pk, "name": "x"}, **HTMX).status_code == 403
    assert NoteFailureMode.objects.count() == 1
    # On the review page the viewer sees chips but no picker and no remove buttons.
    page = viewer_client.get(reverse("trace_detail", args=["acme", a.trace.external_id])).content.decode()
    assert '<span class="mode-chip-name">Wrong date</span>' in page
    assert 'id="mode-picker"' not in page and "chip-remove" not in page and "<kbd>m</kbd>" not in page


def test_posts_need_the_csrf_token(expert, project):
    (a,) = notes_on(project, expert, "a")
    wrong = mode(project, "Wrong date")
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    assert client.post(ASSIGN, {"note": [a.pk], "mode": wrong.pk}).status_code == 403
    assert client.post(_note_urls(a, wrong)[0], {"mode": wrong.pk}).status_code == 403
    assert NoteFailureMode.objects.count() == 0
    page = client.get(BOARD).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(ASSIGN, {"note": [a.pk], "mode": wrong.pk, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert NoteFailureMode.objects.count() == 1
    # htmx sends the token as a header, taken from <body hx-headers>.
    header = re.search(r'"X-CSRFToken": "([^"]+)"', page).group(1)
    (b,) = notes_on(project, expert, "b")
    response = client.post(ASSIGN, {"note": [b.pk], "mode": wrong.pk}, HTTP_X_CSRFTOKEN=header, **HTMX)
    assert response.status_code == 200
    assert NoteFailureMode.objects.count() == 2


def test_untrusted_note_and_mode_text_is_escaped(expert_client, project, expert):
    (a,) = notes_on(project, expert, "<script>alert(1)</script>")
    evil = mode(project, '<img src=x onerror="alert(2)">')
    code_note(make_note(trace=a.trace, author=expert, text="x"), evil)
    html = expert_client.get(BOARD, {"coded": "1"}).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=&quot;alert(2)&quot;&gt;" in html


# The review page: chips and the picker endpoints ---------------------------------------------------------------


def test_review_page_shows_chips_the_picker_and_m_in_the_shortcuts(expert_client, project, expert):
    (a,) = notes_on(project, expert, "a")
    wrong = mode(project, "Wrong date")
    code_note(a, wrong)
    page = expert_client.get(reverse("trace_detail", args=["acme", a.trace.external_id])).content.decode()
    assert '<span class="mode-chip-name">Wrong date</span>' in page
    assert 'id="mode-picker"' in page
    assert reverse("note_mode_remove", args=["acme", a.pk, wrong.pk]) in page
    assert "<tr><td><kbd>m</kbd></td><td>code the selected (or last) note to a failure mode</td></tr>" in page


def test_note_chips_assign_create_and_remove(expert_client, project, expert):
    (a,) = notes_on(project, expert, "a")
    wrong = mode(project, "Wrong date")
    assign, create, remove = _note_urls(a, wrong)

    html = expert_client.post(assign, {"mode": wrong.pk}, **HTMX).content.decode()
    assert html.lstrip().startswith('<div class="note-modes"')
    assert re.findall(r'class="mode-chip-name">([^<]+)<', html) == ["Wrong date"]

    html = expert_client.post(create, {"name": "Rude tone"}, **HTMX).content.decode()
    assert re.findall(r'class="mode-chip-name">([^<]+)<', html) == ["Rude tone", "Wrong date"]
    rude = FailureMode.objects.get(name="Rude tone")
    assert links() == {(a.pk, wrong.pk, a.trace_id), (a.pk, rude.pk, a.trace_id)}

    html = expert_client.post(remove, **HTMX).content.decode()
    assert re.findall(r'class="mode-chip-name">([^<]+)<', html) == ["Rude tone"]
    assert links() == {(a.pk, rude.pk, a.trace_id)}


def test_note_chip_errors_are_shown_in_place_and_write_nothing(expert_client, project, expert):
    (a,) = notes_on(project, expert, "a")
    wrong = mode(project, "Wrong date")
    retired = mode(project, "Old", retired=True)
    assign, create, _ = _note_urls(a, wrong)
    cases = [
        (assign, {"mode": "12345678"}, "Failure mode “12345678” does not exist in this project."),
        (assign, {"mode": retired.pk}, "is retired"),
        (assign, {}, "Pick a failure mode"),
        (create, {"name": "   "}, "A failure mode needs a name"),
        (create, {"name": "WRONG date"}, "already exists"),
        (create, {"name": "nul\x00"}, "cannot contain NUL characters"),
    ]
    for url, data, message in cases:
        html = expert_client.post(url, data, **HTMX).content.decode()
        assert message in re.search(r'class="error mode-error"[^>]*>([^<]*)<', html).group(1)
    assert NoteFailureMode.objects.count() == 0
    assert FailureMode.objects.count() == 2


def test_note_chip_post_without_htmx_redirects_to_the_note(expert_client, project, expert):
    (a,) = notes_on(project, expert, "a")
    wrong = mode(project, "Wrong date")
    response = expert_client.post(_note_urls(a, wrong)[0], {"mode": wrong.pk})
    assert response.status_code == 302
    assert response["Location"] == f"/projects/acme/traces/{a.trace.external_id}/#note-{a.pk}"
    assert links() == {(a.pk, wrong.pk, a.trace_id)}


def test_note_of_another_project_is_404_on_the_chip_endpoints(expert_client, project, expert):
    other = make_project(slug="other", expert=expert)
    (foreign,) = notes_on(other, expert, "foreign")
    wrong = mode(project, "Wrong date")
    for url in _note_urls(foreign, wrong):
        assert expert_client.post(url, {"mode": wrong.pk, "name": "new"}, **HTMX).status_code == 404
    (a,) = notes_on(project, expert, "a")
    theirs = mode(other, "Theirs")
    remove_foreign_mode = reverse("note_mode_remove", args=["acme", a.pk, theirs.pk])
    assert expert_client.post(remove_foreign_mode, **HTMX).status_code == 404
    assert NoteFailureMode.objects.count() == 0 and FailureMode.objects.filter(project=project).count() == 1


def test_choices_list_the_non_retired_modes_by_name(expert_client, project):
    mode(project, "beta")
    alpha = mode(project, "Alpha")
    mode(project, "gone", retired=True)
    mode(make_project(slug="other"), "theirs")
    data = expert_client.get(reverse("failure_mode_choices", args=["acme"])).json()
    assert [m["name"] for m in data["modes"]] == ["Alpha", "beta"]
    assert data["modes"][0]["id"] == alpha.pk


# The failure-modes page's charts --------------------------------------------------------------------------------


def test_failure_modes_page_draws_both_charts(expert_client, project, expert):
    wrong, rude = mode(project, "Wrong date"), mode(project, "<b>Rude</b> tone")
    for minute, modes in enumerate([(wrong,), (wrong, rude), (wrong,)]):
        trace = make_trace(project=project, reviewed_at=timezone.now() + timedelta(minutes=minute))
        code_note(make_note(trace=trace, author=expert), *modes)
    html = expert_client.get(reverse("failure_mode_list", args=["acme"])).content.decode()
    pareto = html[html.index('id="pareto-chart"') : html.index('id="saturation-chart"')]
    assert pareto.count('class="chart-bar"') == 2
    assert f'href="/projects/acme/traces/?mode={wrong.pk}"' in pareto
    assert "&lt;b&gt;Rude&lt;/b&gt; tone" in pareto and "<b>Rude" not in pareto
    assert 'class="chart-line" points="' in pareto and 'class="chart-reference"' in pareto
    saturation = html[html.index('id="saturation-chart"') :]
    assert 'data-points="3"' in saturation  # the first trace, the jump at trace 2, the end
    assert "2 failure modes after 3 reviewed traces" in saturation
    assert saturation.count('class="chart-point"') == 2


def test_failure_modes_page_without_data_says_so_instead_of_empty_charts(expert_client, project):
    html = expert_client.get(reverse("failure_mode_list", args=["acme"])).content.decode()
    assert "No coded notes yet, so nothing to chart." in html
    assert "No reviewed traces yet, so no saturation curve." in html
    assert "<svg" not in html


@pytest.mark.parametrize("cursor", ["after=abc", "after=-5", "after=99999999999999999999999", "after="])
def test_a_hand_edited_cursor_shows_the_first_page(expert_client, project, expert, cursor):
    first, second = notes_on(project, expert, "first", "second")
    response = expert_client.get(f"{BOARD}?{cursor}")
    assert response.status_code == 200
    assert board_note_ids(response.content.decode()) == [second.pk, first.pk]


def test_htmx_get_answers_just_the_board(expert_client, project, expert):
    (a,) = notes_on(project, expert, "refund wrong")
    html = expert_client.get(BOARD, {"q": "refund"}, **HTMX).content.decode()
    assert html.lstrip().startswith('<div id="coding-board"') and "<html" not in html
    assert board_note_ids(html) == [a.pk]


def test_pareto_counts_agree_with_the_taxonomy_counts(project, expert):
    import random

    from annotation.coding_board import pareto_counts
    from annotation.taxonomy import failure_mode_counts

    rng = random.Random(3)
    modes = [mode(project, f"m{i}") for i in range(6)]
    mode(project, "never used")
    traces = [make_trace(project=project) for _ in range(15)]
    for _ in range(40):
        code_note(make_note(trace=rng.choice(traces), author=expert), *rng.sample(modes, rng.randint(1, 3)))
    expected = {c.id: c.trace_count for c in failure_mode_counts(project=project) if c.trace_count}
    assert {c.id: c.trace_count for c in pareto_counts(project=project)} == expected
    assert pareto_counts(project=make_project(slug="empty")) == []


def test_the_index_walk_leaves_the_planner_settings_as_they_were(project, expert):
    from django.http import QueryDict

    from annotation.coding_board import BoardParams, board_page

    notes_on(project, expert, "Promises a refund", "Rude tone")
    page = board_page(project=project, params=BoardParams.from_query(QueryDict("q=REFUND")))
    assert [note.text for note in page.notes] == ["Promises a refund"]
    assert page.count is None  # a filtered board is not counted
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('enable_seqscan'), current_setting('enable_sort')")
        assert cursor.fetchone() == ("on", "on")


def _walk(project: Project, query: str, *, size: int) -> tuple[list[int], list[list[int]], int]:
    """Follow `next` links from the first page to the end; return the ids seen, the pages, and partial pages."""
    from django.http import QueryDict

    from annotation.coding_board import BoardParams, board_page

    seen, pages, partial = [], [], 0
    cursor = ""
    for _ in range(200):
        page = board_page(project=project, params=BoardParams.from_query(QueryDict(query + cursor)), size=size)
        ids = [note.pk for note in page.notes]
        seen += ids
        pages.append(ids)
        partial += page.searched_part
        if page.next_cursor is None:
            return seen, pages, partial
        cursor = f"&after={page.next_cursor}"
    raise AssertionError("the pager never ended")


def test_a_sparse_filter_is_searched_window_by_window_without_losing_a_note(monkeypatch, project, expert):
    import random

    from django.http import QueryDict

    from annotation import coding_board as coding

    monkeypatch.setattr(coding, "SCAN_WINDOW", 7)
    rng = random.Random(11)
    trace = make_trace(project=project)
    notes = [make_note(trace=trace, author=expert, text="refund" if rng.random() < 0.2 else "other") for _ in range(90)]
    code_note(notes[5], mode(project, "coded"))
    expected = [n.pk for n in reversed(notes) if n.text == "refund" and n.pk != notes[5].pk]
    seen, pages, partial = _walk(project, "q=refund", size=3)
    assert seen == expected  # every match once, newest first, across windows that matched nothing
    assert partial > 0 and all(len(ids) <= 3 for ids in pages)
    # Walking back with `before` from the end retraces the matches in the same order.
    back: list[int] = []
    params = coding.BoardParams.from_query(QueryDict(f"q=refund&before={min(expected) - 1}"))
    for _ in range(200):
        page = coding.board_page(project=project, params=params, size=3)
        back = [note.pk for note in page.notes] + back
        if page.previous_cursor is None:
            break
        params = coding.BoardParams.from_query(QueryDict(f"q=refund&before={page.previous_cursor}"))
    assert back == expected


def test_the_window_also_bounds_the_unfiltered_uncoded_list(monkeypatch, project, expert):
    from annotation import coding_board as coding

    monkeypatch.setattr(coding, "SCAN_WINDOW", 10)
    trace = make_trace(project=project)
    done = mode(project, "done")
    notes = [make_note(trace=trace, author=expert, text=f"n{i}") for i in range(40)]
    for note in notes[3:]:
        code_note(note, done)  # only the three oldest are still uncoded
    seen, pages, partial = _walk(project, "", size=50)
    assert seen == [notes[2].pk, notes[1].pk, notes[0].pk]
    assert pages[0] == [] and partial >= 1


def test_chips_on_the_review_page_cost_one_query_however_many_notes(expert_client, project, expert):
    trace = make_trace(project=project)
    wrong, rude = mode(project, "Wrong date"), mode(project, "Rude tone")
    code_note(make_note(trace=trace, author=expert, text="one"), wrong)
    url = reverse("trace_detail", args=["acme", trace.external_id])
    expert_client.get(url)  # the first visit also saves the sitting in the session
    with CaptureQueriesContext(connection) as few:
        expert_client.get(url)
    for i in range(8):
        code_note(make_note(trace=trace, author=expert, text=f"more {i}"), wrong, rude)
    with CaptureQueriesContext(connection) as many:
        html = expert_client.get(url).content.decode()
    assert len(many.captured_queries) == len(few.captured_queries)
    assert html.count('<span class="mode-chip-name">Rude tone</span>') == 8


def test_a_note_added_with_htmx_comes_back_with_its_picker_button(expert_client, project):
    trace = make_trace(project=project)
    response = expert_client.post(reverse("note_add", args=["acme", trace.pk]), {"text": "Wrong year"}, **HTMX)
    note = Note.objects.get(text="Wrong year")
    html = response.content.decode()
    assert f'id="note-modes-{note.pk}"' in html and 'data-action="pick-mode"' in html
