"""Coding notes as services: to an existing mode or a new one, all or nothing, and the modes offered for it."""

from __future__ import annotations

import pytest
from django.utils import timezone

from annotation.codebook import failure_mode_create, note_code_to_new_mode, notes_code
from annotation.coding_board import mode_choices
from annotation.models import FailureMode, FailureModeChange, NoteFailureMode
from annotation.services import DomainError
from tests.factories import code_note, make_note, make_project, make_trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def notes(project, expert):
    trace = make_trace(project=project)
    return [make_note(trace=trace, author=expert, text=f"note {i}") for i in range(3)]


def links() -> set[tuple[int, int]]:
    return set(NoteFailureMode.objects.values_list("note_id", "failure_mode_id"))


def test_notes_are_coded_to_an_existing_mode_and_those_already_coded_are_counted_apart(project, expert, notes):
    wrong = failure_mode_create(project=project, name="Wrong date", actor=expert)
    code_note(notes[0], wrong)
    coded = notes_code(project=project, note_ids=[n.pk for n in notes], existing_mode=f" {wrong.pk} ", actor=expert)
    assert (coded.failure_mode, coded.created, coded.added, coded.already) == (wrong, False, 2, 1)
    assert links() == {(n.pk, wrong.pk) for n in notes}


def test_naming_a_new_mode_creates_it_with_its_history_and_codes_the_notes(project, expert, notes):
    coded = notes_code(project=project, note_ids=[notes[1].pk], new_mode_name="  Rude tone ", actor=expert)
    mode = FailureMode.objects.get(project=project)
    assert (mode.name, coded.failure_mode, coded.created, coded.added, coded.already) == ("Rude tone", mode, True, 1, 0)
    assert FailureModeChange.objects.get(failure_mode=mode).actor == expert
    assert links() == {(notes[1].pk, mode.pk)}


@pytest.mark.parametrize(
    ("ids", "existing", "new", "message"),
    [
        ("none", "", "", "Select at least one note to code."),
        ("foreign", "", "Fresh", "Note {foreign} not found in this project."),
        ("one", "{wrong}", "Fresh", "Pick an existing failure mode or name a new one, not both."),
        ("one", "", "", "Pick a failure mode, or name a new one, to code the selected notes to."),
        ("one", "abc", "", "Failure mode “abc” does not exist in this project."),
        ("one", "{theirs}", "", "Failure mode “{theirs}” does not exist in this project."),
        ("one", "{retired}", "", "Failure mode “Old” is retired; restore it before coding notes to it"),
        ("one", "", "bad\x00name", "A failure mode name cannot contain NUL characters."),
        ("one", "", "WRONG DATE", "A failure mode named “WRONG DATE” already exists in this project"),
    ],
)
def test_bad_requests_are_refused_with_the_reason_and_write_nothing(
    project, expert, notes, ids, existing, new, message
):
    wrong = failure_mode_create(project=project, name="Wrong date", actor=expert)
    retired = failure_mode_create(project=project, name="Old", actor=expert)
    FailureMode.objects.filter(pk=retired.pk).update(retired_at=timezone.now())
    other = make_project(slug="other", expert=expert)
    theirs = failure_mode_create(project=other, name="Theirs", actor=expert)
    foreign = make_note(trace=make_trace(project=other), author=expert)
    names = {"wrong": wrong.pk, "theirs": theirs.pk, "retired": retired.pk, "foreign": foreign.pk}
    note_ids = {"none": [], "one": [notes[0].pk], "foreign": [notes[0].pk, foreign.pk]}[ids]
    modes_before = FailureMode.objects.count()
    with pytest.raises(DomainError) as refused:
        notes_code(project=project, note_ids=note_ids, existing_mode=existing.format(**names),
                   new_mode_name=new, actor=expert)  # fmt: skip
    assert str(refused.value) == message.format(**names)
    assert links() == set() and FailureMode.objects.count() == modes_before


def test_a_new_mode_for_one_note_is_created_and_linked_or_neither(project, expert, notes):
    mode = note_code_to_new_mode(project=project, note=notes[2], name="Invents a fee", actor=expert)
    assert links() == {(notes[2].pk, mode.pk)} and mode.project == project
    with pytest.raises(DomainError, match="^A failure mode needs a name$"):
        note_code_to_new_mode(project=project, note=notes[0], name="   ", actor=expert)
    assert FailureMode.objects.count() == 1


def test_mode_choices_are_the_current_modes_by_name(project, expert):
    for name in ("zeta", "Alpha", "beta"):
        failure_mode_create(project=project, name=name, actor=expert)
    FailureMode.objects.filter(name="beta").update(retired_at=timezone.now())
    assert [m.name for m in mode_choices(project=project)] == ["Alpha", "zeta"]
