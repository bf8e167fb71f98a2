"""Suggestions as the page reads them, and accepting one as its card posts it, asserted on values."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from annotation.codebook import failure_mode_create, notes_assign
from annotation.models import NoteFailureMode, Suggestion, SuggestionRun
from annotation.services import DomainError
from annotation.suggestions import (
    suggestion_accept_edited,
    suggestion_for_review,
    suggestion_runs_recent,
    suggestions_for_review,
)
from tests.factories import make_note, make_project, make_trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def run(project, expert):
    run = SuggestionRun.objects.create(project=project, created_by=expert, status="done")
    run.params = {"llm_naming": {"problems": {"1": "the reply was not JSON"}}}
    run.save(update_fields=["params"])
    return run


def suggestion(run, position: int, notes) -> Suggestion:
    made = Suggestion.objects.create(run=run, name=f"group {position}", position=position)
    made.notes.set(notes)
    return made


@pytest.fixture
def notes(project, expert):
    trace = make_trace(project=project)
    return [make_note(trace=trace, author=expert, text=f"n{i}") for i in range(6)]


def test_suggestions_come_in_order_with_their_first_notes_counts_and_naming_problem(run, notes, expert, monkeypatch):
    monkeypatch.setattr("annotation.suggestions.SHOWN_NOTES", 3)
    second = suggestion(run, 1, notes[4:])
    first = suggestion(run, 0, notes[:4])
    notes_assign(notes=[notes[0]], failure_mode=failure_mode_create(project=run.project, name="m", actor=expert))
    got = suggestions_for_review(run=run)
    assert [s.pk for s in got] == [first.pk, second.pk]
    assert [(n.text, n.is_coded) for n in got[0].shown_notes] == [("n0", True), ("n1", False), ("n2", False)]
    assert (got[0].note_total, got[0].hidden_count, got[0].naming_problem) == (4, 1, "")
    assert (got[1].note_total, got[1].hidden_count, got[1].naming_problem) == (2, 0, "the reply was not JSON")
    one = suggestion_for_review(run=run, suggestion_id=second.pk)
    assert (one.pk, one.hidden_count, one.naming_problem) == (second.pk, 0, "the reply was not JSON")


def test_recent_runs_are_newest_first_with_counts_leaving_out_the_one_on_show(project, expert, run, notes):
    suggestion(run, 0, notes[:2])
    suggestion(run, 1, notes[2:])
    older = SuggestionRun.objects.create(project=project, created_by=expert, created_at=timezone.now() - timedelta(1))
    SuggestionRun.objects.create(project=make_project(slug="other"), created_by=expert)
    recent = list(suggestion_runs_recent(project=project, limit=5))
    assert [(r.pk, r.suggestion_count) for r in recent] == [(run.pk, 2), (older.pk, 0)]
    assert list(suggestion_runs_recent(project=project, limit=5, exclude=run)) == [older]
    assert list(suggestion_runs_recent(project=project, limit=1)) == [run]


def test_accepting_as_posted_codes_every_member_but_the_unticked_to_a_new_mode(run, notes, expert):
    group = suggestion(run, 0, notes)
    outcome = suggestion_accept_edited(
        suggestion=group, name="Wrong dates", definition="", dropped_note_ids={notes[1].pk}, actor=expert
    )
    assert (outcome.failure_mode.name, outcome.assigned, outcome.skipped) == ("Wrong dates", 5, 0)
    coded = set(NoteFailureMode.objects.values_list("note_id", flat=True))
    assert coded == {n.pk for n in notes} - {notes[1].pk}


def test_accepting_into_an_existing_mode_finds_it_in_the_project_only(run, notes, expert):
    mine = failure_mode_create(project=run.project, name="Mine", actor=expert)
    theirs = failure_mode_create(project=make_project(slug="other"), name="Theirs", actor=expert)
    group = suggestion(run, 0, notes[:2])
    with pytest.raises(DomainError, match=f"^There is no failure mode {theirs.pk} in this project$"):
        suggestion_accept_edited(
            suggestion=group, name="", definition="", dropped_note_ids=set(), failure_mode_id=theirs.pk, actor=expert
        )
    outcome = suggestion_accept_edited(
        suggestion=group, name="", definition="", dropped_note_ids=set(), failure_mode_id=mine.pk, actor=expert
    )
    assert (outcome.failure_mode, outcome.assigned) == (mine, 2)
