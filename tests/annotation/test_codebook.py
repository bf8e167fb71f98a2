"""Editing the codebook: rename, redefine, merge, split, retire and restore, their history, their page, and the
migration that gave every note ↔ mode link its trace."""

from __future__ import annotations

import random
import re
import threading
import time
from collections import defaultdict

import pytest
from django.contrib.auth.models import User
from django.db import connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.codebook import (
    failure_mode_create,
    failure_mode_merge,
    failure_mode_redefine,
    failure_mode_rename,
    failure_mode_restore,
    failure_mode_retire,
    failure_mode_split,
    notes_assign,
)
from annotation.models import FailureMode, FailureModeChange, Note, NoteFailureMode, Project, Role, Trace
from annotation.services import DomainError
from annotation.taxonomy import failure_mode_counts
from tests.factories import add_member, code_note, make_criterion, make_note, make_project, make_trace, make_user

Action = FailureModeChange.Action


def new_mode(project: Project, name: str, actor: User | None = None) -> FailureMode:
    return failure_mode_create(project=project, name=name, definition=f"When {name} shows.", actor=actor)


def coded(project: Project, author: User, *modes: FailureMode, trace: Trace | None = None) -> Note:
    trace = trace or make_trace(project=project)
    return code_note(make_note(trace=trace, author=author, text=f"note on {trace.external_id}"), *modes)


def note_ids_of(mode: FailureMode) -> set[int]:
    return set(NoteFailureMode.objects.filter(failure_mode=mode).values_list("note_id", flat=True))


def trace_ids_of(mode: FailureMode) -> set[int]:
    return set(NoteFailureMode.objects.filter(failure_mode=mode).values_list("trace_id", flat=True))


def changes(mode: FailureMode) -> list[FailureModeChange]:
    return list(FailureModeChange.objects.filter(failure_mode=mode).order_by("id"))


def counts_by_id(project: Project) -> dict[int, tuple[int, int]]:
    return {c.id: (c.trace_count, c.note_count) for c in failure_mode_counts(project=project)}


# Rename and redefine -----------------------------------------------------------------------------------------------


def test_rename_records_old_and_new_name(project, expert):
    mode = new_mode(project, "Hallucination")
    failure_mode_rename(mode=mode, name="  Invented   facts ", actor=expert)
    mode.refresh_from_db()
    assert mode.name == "Invented facts"
    last = changes(mode)[-1]
    assert (last.action, last.detail, last.actor) == (
        Action.RENAMED,
        {"from": "Hallucination", "to": "Invented facts"},
        expert,
    )


def test_rename_to_a_change_of_case_is_allowed(project, expert):
    mode = new_mode(project, "tone")
    failure_mode_rename(mode=mode, name="Tone", actor=expert)
    assert FailureMode.objects.get(pk=mode.pk).name == "Tone"


def test_rename_to_the_same_name_changes_nothing(project, expert):
    mode = new_mode(project, "Tone")
    failure_mode_rename(mode=mode, name="Tone", actor=expert)
    assert [c.action for c in changes(mode)] == [Action.CREATED]


@pytest.mark.parametrize(
    ("name", "message"),
    [("", "needs a name"), ("   ", "needs a name"), ("x" * 201, "limited to 200"), ("TONE", "already exists")],
)
def test_rename_refuses_bad_names(project, expert, name, message):
    new_mode(project, "Tone")
    mode = new_mode(project, "Hallucination")
    with pytest.raises(DomainError, match=message):
        failure_mode_rename(mode=mode, name=name, actor=expert)
    assert FailureMode.objects.get(pk=mode.pk).name == "Hallucination"
    assert [c.action for c in changes(mode)] == [Action.CREATED]


def test_same_name_in_another_project_is_fine(project, expert):
    other = make_project(slug="other", expert=expert)
    new_mode(other, "Tone")
    mode = new_mode(project, "Hallucination")
    failure_mode_rename(mode=mode, name="tone", actor=expert)
    assert FailureMode.objects.get(pk=mode.pk).name == "tone"


def test_a_name_taken_between_check_and_write_is_refused_cleanly(project, expert, monkeypatch):
    """Another request may take the name after the check: the unique constraint's refusal becomes the same error."""
    new_mode(project, "Tone")
    mode = new_mode(project, "Voice")
    note = coded(project, expert, mode)
    coded(project, expert, mode)
    monkeypatch.setattr("annotation.codebook._require_unique_name", lambda *args, **kwargs: None)
    with pytest.raises(DomainError, match="named “Tone” already exists"):
        failure_mode_rename(mode=mode, name="Tone", actor=expert)
    with pytest.raises(DomainError, match="named “Tone” already exists"):
        failure_mode_split(mode=mode, new_name="Tone", new_definition="", note_ids=[note.pk], actor=expert)
    assert FailureMode.objects.get(pk=mode.pk).name == "Voice" and note.pk in note_ids_of(mode)


def test_rename_of_a_deleted_mode_is_refused(project, expert):
    mode = new_mode(project, "Tone")
    FailureMode.objects.filter(pk=mode.pk).delete()
    with pytest.raises(DomainError, match="no longer exists"):
        failure_mode_rename(mode=mode, name="Voice", actor=expert)


def test_redefine_records_the_previous_definition(project, expert):
    mode = new_mode(project, "Tone")
    failure_mode_redefine(mode=mode, definition="  Too casual for support.  ", actor=expert)
    mode.refresh_from_db()
    assert mode.definition == "Too casual for support."
    last = changes(mode)[-1]
    assert last.action == Action.REDEFINED
    assert last.detail == {"from": "When Tone shows.", "to": "Too casual for support."}


def test_redefine_refuses_an_overlong_definition(project, expert):
    mode = new_mode(project, "Tone")
    with pytest.raises(DomainError, match="limited to 5000"):
        failure_mode_redefine(mode=mode, definition="x" * 5001, actor=expert)
    assert FailureMode.objects.get(pk=mode.pk).definition == "When Tone shows."


# Merge ---------------------------------------------------------------------------------------------------------------


def test_merge_moves_notes_without_duplicating_and_retires_the_source(project, expert):
    source, target = new_mode(project, "Made-up numbers"), new_mode(project, "Hallucination")
    only_source = coded(project, expert, source)
    both = coded(project, expert, source, target)
    only_target = coded(project, expert, target)
    # A second note on only_source's trace, coded to the target: the trace must count once after the merge.
    same_trace = coded(project, expert, target, trace=only_source.trace)

    failure_mode_merge(source=source, target=target, actor=expert)

    assert note_ids_of(target) == {only_source.pk, both.pk, only_target.pk, same_trace.pk}
    assert note_ids_of(source) == set()
    assert NoteFailureMode.objects.filter(note=both).count() == 1
    source.refresh_from_db()
    assert source.is_retired and source.merged_into_id == target.pk
    counts = counts_by_id(project)
    assert counts[target.pk] == (3, 4)  # traces of source ∪ target, notes of source ∪ target
    assert source.pk not in counts  # retired and empty: off the list


def test_merge_writes_history_on_both_modes(project, expert):
    source, target = new_mode(project, "Made-up numbers"), new_mode(project, "Hallucination")
    coded(project, expert, source)
    coded(project, expert, source, target)
    failure_mode_merge(source=source, target=target, actor=expert)

    on_source, on_target = changes(source)[-1], changes(target)[-1]
    assert on_source.action == on_target.action == Action.MERGED
    assert on_source.detail["role"] == "source" and on_target.detail["role"] == "target"
    for detail in (on_source.detail, on_target.detail):
        assert detail["source_id"] == source.pk and detail["target_id"] == target.pk
        assert detail["source_name"] == "Made-up numbers" and detail["target_name"] == "Hallucination"
        assert (detail["notes_moved"], detail["notes_already_on_target"]) == (1, 1)
        assert (detail["target_traces_before"], detail["target_traces_after"]) == (1, 2)
        assert (detail["source_notes"], detail["source_traces"]) == (2, 2)


def test_merge_moves_the_criteria_of_the_source_to_the_target(project, expert):
    source, target = new_mode(project, "Made-up numbers"), new_mode(project, "Hallucination")
    criterion = make_criterion(project=project, name="grounded", failure_mode=source)
    failure_mode_merge(source=source, target=target, actor=expert)
    criterion.refresh_from_db()
    assert criterion.failure_mode == target
    assert changes(target)[-1].detail["criteria_moved"] == 1


def test_merge_into_itself_is_refused(project, expert):
    mode = new_mode(project, "Tone")
    with pytest.raises(DomainError, match="into itself"):
        failure_mode_merge(source=mode, target=FailureMode.objects.get(pk=mode.pk), actor=expert)


def test_merge_across_projects_is_refused(project, expert):
    other = make_project(slug="other", expert=expert)
    source, target = new_mode(project, "Tone"), new_mode(other, "Tone")
    note = coded(project, expert, source)
    with pytest.raises(DomainError, match="different projects"):
        failure_mode_merge(source=source, target=target, actor=expert)
    assert note_ids_of(source) == {note.pk}
    assert not FailureMode.objects.get(pk=source.pk).is_retired


def test_merge_into_a_retired_mode_is_refused(project, expert):
    source, target = new_mode(project, "Tone"), new_mode(project, "Voice")
    note = coded(project, expert, source)
    stale_target = FailureMode.objects.get(pk=target.pk)
    failure_mode_retire(mode=target, actor=expert)
    # The caller's copy still looks active: the service must decide on the locked, current row.
    with pytest.raises(DomainError, match="retired"):
        failure_mode_merge(source=source, target=stale_target, actor=expert)
    assert note_ids_of(source) == {note.pk}


def test_merging_a_retired_mode_is_refused(project, expert):
    source, target = new_mode(project, "Tone"), new_mode(project, "Voice")
    stale_source = FailureMode.objects.get(pk=source.pk)
    failure_mode_retire(mode=source, actor=expert)
    with pytest.raises(DomainError, match="already retired"):
        failure_mode_merge(source=stale_source, target=target, actor=expert)


def test_merge_into_a_deleted_mode_is_refused(project, expert):
    source, target = new_mode(project, "Tone"), new_mode(project, "Voice")
    note = coded(project, expert, source)
    FailureMode.objects.filter(pk=target.pk).delete()
    with pytest.raises(DomainError, match="no longer exists"):
        failure_mode_merge(source=source, target=target, actor=expert)
    assert note_ids_of(source) == {note.pk}


# Split ---------------------------------------------------------------------------------------------------------------


def test_split_moves_the_chosen_notes_to_a_new_mode(project, expert):
    mode = new_mode(project, "Hallucination")
    a, b, c = (coded(project, expert, mode) for _ in range(3))
    created = failure_mode_split(
        mode=mode, new_name="Made-up numbers", new_definition="Invented figures.", note_ids=[a.pk, b.pk], actor=expert
    )
    assert (created.name, created.definition, created.project_id) == (
        "Made-up numbers",
        "Invented figures.",
        project.pk,
    )
    assert note_ids_of(created) == {a.pk, b.pk}
    assert note_ids_of(mode) == {c.pk}
    assert trace_ids_of(created) == {a.trace_id, b.trace_id}
    counts = counts_by_id(project)
    assert counts[created.pk] == (2, 2) and counts[mode.pk] == (1, 1)


def test_split_with_keep_leaves_the_notes_on_the_original_too(project, expert):
    mode = new_mode(project, "Hallucination")
    a, b = coded(project, expert, mode), coded(project, expert, mode)
    created = failure_mode_split(
        mode=mode, new_name="Numbers", new_definition="", note_ids=[a.pk], actor=expert, keep=True
    )
    assert note_ids_of(created) == {a.pk}
    assert note_ids_of(mode) == {a.pk, b.pk}


def test_split_writes_history_on_the_original_and_the_new_mode(project, expert):
    mode = new_mode(project, "Hallucination")
    a, b = coded(project, expert, mode), coded(project, expert, mode)
    coded(project, expert, mode, trace=a.trace)
    created = failure_mode_split(mode=mode, new_name="Numbers", new_definition="", note_ids=[a.pk], actor=expert)

    split = changes(mode)[-1]
    assert split.action == Action.SPLIT and split.actor == expert
    assert split.detail["new_mode_id"] == created.pk and split.detail["new_mode_name"] == "Numbers"
    assert split.detail["note_ids"] == [a.pk]
    assert (split.detail["notes_split"], split.detail["traces_split"]) == (1, 1)
    assert (split.detail["original_notes_before"], split.detail["original_notes_after"]) == (3, 2)
    # a's trace still carries the mode through its second note.
    assert (split.detail["original_traces_before"], split.detail["original_traces_after"]) == (2, 2)
    assert split.detail["kept_on_original"] is False
    born = changes(created)
    assert [c.action for c in born] == [Action.CREATED]
    assert born[0].detail["split_from_id"] == mode.pk and born[0].detail["split_from_name"] == "Hallucination"
    assert b.pk in note_ids_of(mode)


def test_split_needs_at_least_one_note(project, expert):
    mode = new_mode(project, "Hallucination")
    coded(project, expert, mode)
    with pytest.raises(DomainError, match="at least one note"):
        failure_mode_split(mode=mode, new_name="Numbers", new_definition="", note_ids=[], actor=expert)
    assert not FailureMode.objects.filter(name="Numbers").exists()


def test_split_refuses_notes_not_coded_to_the_mode(project, expert):
    mode, other = new_mode(project, "Hallucination"), new_mode(project, "Tone")
    mine = coded(project, expert, mode)
    coded(project, expert, mode)
    elsewhere = coded(project, expert, other)
    uncoded = make_note(trace=make_trace(project=project), author=expert)
    for bad in (elsewhere.pk, uncoded.pk, 999_999_999):
        with pytest.raises(DomainError, match=rf"Note {bad} is not coded to “Hallucination”"):
            failure_mode_split(mode=mode, new_name="Numbers", new_definition="", note_ids=[mine.pk, bad], actor=expert)
    assert not FailureMode.objects.filter(name="Numbers").exists()
    assert mine.pk in note_ids_of(mode)


def test_split_of_every_note_needs_confirmation(project, expert):
    mode = new_mode(project, "Hallucination")
    a, b = coded(project, expert, mode), coded(project, expert, mode)
    with pytest.raises(DomainError, match="All 2 notes"):
        failure_mode_split(mode=mode, new_name="Numbers", new_definition="", note_ids=[a.pk, b.pk], actor=expert)
    assert note_ids_of(mode) == {a.pk, b.pk}
    created = failure_mode_split(
        mode=mode, new_name="Numbers", new_definition="", note_ids=[a.pk, b.pk], actor=expert, confirm_all=True
    )
    assert note_ids_of(created) == {a.pk, b.pk} and note_ids_of(mode) == set()


@pytest.mark.parametrize(("name", "message"), [("HALLUCINATION", "already exists"), (" ", "needs a name")])
def test_split_refuses_a_bad_new_name(project, expert, name, message):
    mode = new_mode(project, "Hallucination")
    a, _ = coded(project, expert, mode), coded(project, expert, mode)
    with pytest.raises(DomainError, match=message):
        failure_mode_split(mode=mode, new_name=name, new_definition="", note_ids=[a.pk], actor=expert)
    assert FailureMode.objects.filter(project=project).count() == 1


def test_split_of_a_retired_mode_is_refused(project, expert):
    mode = new_mode(project, "Hallucination")
    a, _ = coded(project, expert, mode), coded(project, expert, mode)
    stale = FailureMode.objects.get(pk=mode.pk)
    failure_mode_retire(mode=mode, actor=expert)
    with pytest.raises(DomainError, match="retired"):
        failure_mode_split(mode=stale, new_name="Numbers", new_definition="", note_ids=[a.pk], actor=expert)


# Retire and restore ---------------------------------------------------------------------------------------------


def test_retire_keeps_the_notes_and_records_the_counts(project, expert):
    mode = new_mode(project, "Tone")
    note = coded(project, expert, mode)
    failure_mode_retire(mode=mode, actor=expert)
    mode.refresh_from_db()
    assert mode.is_retired and mode.merged_into is None
    assert note_ids_of(mode) == {note.pk}
    last = changes(mode)[-1]
    assert (last.action, last.detail["notes"], last.detail["traces"]) == (Action.RETIRED, 1, 1)
    with pytest.raises(DomainError, match="already retired"):
        failure_mode_retire(mode=mode, actor=expert)


def test_restore_brings_a_retired_mode_back(project, expert):
    mode = new_mode(project, "Tone")
    with pytest.raises(DomainError, match="not retired"):
        failure_mode_restore(mode=mode, actor=expert)
    failure_mode_retire(mode=mode, actor=expert)
    failure_mode_restore(mode=mode, actor=expert)
    mode.refresh_from_db()
    assert not mode.is_retired
    assert [c.action for c in changes(mode)] == [Action.CREATED, Action.RETIRED, Action.RESTORED]


def test_restoring_a_merged_mode_brings_it_back_empty_and_says_where_its_notes_went(project, expert):
    source, target = new_mode(project, "Tone"), new_mode(project, "Voice")
    note = coded(project, expert, source)
    failure_mode_merge(source=source, target=target, actor=expert)
    failure_mode_restore(mode=source, actor=expert)
    source.refresh_from_db()
    assert not source.is_retired and source.merged_into is None
    assert note_ids_of(source) == set() and note_ids_of(target) == {note.pk}
    last = changes(source)[-1]
    assert last.detail["was_merged_into_id"] == target.pk and last.detail["was_merged_into_name"] == "Voice"


def test_coding_a_note_to_a_mode_retired_meanwhile_is_refused(project, expert):
    mode = new_mode(project, "Tone")
    stale = FailureMode.objects.get(pk=mode.pk)
    failure_mode_retire(mode=mode, actor=expert)
    note = make_note(trace=make_trace(project=project), author=expert)
    with pytest.raises(DomainError, match="retired"):
        notes_assign(notes=[note], failure_mode=stale)
    assert note_ids_of(mode) == set()


# Concurrency: real transactions on separate connections -----------------------------------------------------------


def _wait_until_blocked_on_a_lock(thread: threading.Thread, what: str, timeout: float = 10) -> None:
    """Until PostgreSQL shows a session of this database waiting for a lock (the thread's), failing at once if the
    thread finishes instead: proof that it waits, with no fixed sleep to guess how long it would take to get there."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            assert thread.is_alive(), what
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError(f"{what} (no session waited for a lock within {timeout} s)")


def _in_thread(target, *args) -> tuple[threading.Thread, dict]:
    """Run `target` in a thread with its own database connection; its result or exception lands in the dict."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["result"] = target(*args)
        except Exception as exc:  # reported to the test, which asserts on it
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


@pytest.mark.django_db(transaction=True)
def test_merge_waits_for_notes_being_coded_to_the_source_and_moves_them_too():
    expert = make_user("expert")
    project = make_project(slug="acme", expert=expert)
    source, target = new_mode(project, "Tone"), new_mode(project, "Voice")
    first = coded(project, expert, source)
    late = make_note(trace=make_trace(project=project), author=expert)
    coding, release = threading.Event(), threading.Event()

    def code_and_hold() -> None:
        with transaction.atomic():
            notes_assign(notes=[late], failure_mode=source)
            coding.set()
            release.wait(10)

    coder, coder_outcome = _in_thread(code_and_hold)
    assert coding.wait(10)
    merger, merge_outcome = _in_thread(lambda: failure_mode_merge(source=source, target=target, actor=expert))
    _wait_until_blocked_on_a_lock(merger, "the merge must wait for the coding transaction that holds the source")
    release.set()
    coder.join(10)
    merger.join(10)
    assert "error" not in coder_outcome and "error" not in merge_outcome, (coder_outcome, merge_outcome)
    assert note_ids_of(target) == {first.pk, late.pk}
    assert note_ids_of(source) == set()


@pytest.mark.django_db(transaction=True)
def test_coding_waits_for_a_retire_in_flight_and_is_then_refused():
    expert = make_user("expert")
    project = make_project(slug="acme", expert=expert)
    mode = new_mode(project, "Tone")
    stale = FailureMode.objects.get(pk=mode.pk)
    note = make_note(trace=make_trace(project=project), author=expert)
    retired, release = threading.Event(), threading.Event()

    def retire_and_hold() -> None:
        with transaction.atomic():
            failure_mode_retire(mode=mode, actor=expert)
            retired.set()
            release.wait(10)

    retirer, retire_outcome = _in_thread(retire_and_hold)
    assert retired.wait(10)
    coder, coder_outcome = _in_thread(lambda: notes_assign(notes=[note], failure_mode=stale))
    _wait_until_blocked_on_a_lock(coder, "coding must wait for the retire that holds the mode")
    release.set()
    retirer.join(10)
    coder.join(10)
    assert "error" not in retire_outcome
    assert isinstance(coder_outcome.get("error"), DomainError) and "retired" in str(coder_outcome["error"])
    assert note_ids_of(mode) == set()


@pytest.mark.django_db(transaction=True)
def test_concurrent_chained_merges_lose_no_note():
    """A→B and B→C at the same time: whichever order the locks give, every note ends on one active mode."""
    expert = make_user("expert")
    project = make_project(slug="acme", expert=expert)
    a, b, c = new_mode(project, "A"), new_mode(project, "B"), new_mode(project, "C")
    notes = {coded(project, expert, a).pk, coded(project, expert, b).pk, coded(project, expert, c).pk}
    start = threading.Barrier(2)

    def merge(source: FailureMode, target: FailureMode) -> None:
        start.wait(10)
        failure_mode_merge(source=source, target=target, actor=expert)

    first, first_outcome = _in_thread(merge, a, b)
    second, second_outcome = _in_thread(merge, b, c)
    first.join(10)
    second.join(10)
    assert "error" not in second_outcome  # B→C never needs anything but B and C active
    active = FailureMode.objects.filter(project=project, retired_at__isnull=True)
    linked = set(NoteFailureMode.objects.filter(failure_mode__in=active).values_list("note_id", flat=True))
    assert linked == notes
    assert not NoteFailureMode.objects.filter(failure_mode__retired_at__isnull=False).exists()
    if "error" in first_outcome:  # B was retired first: A→B refused, A keeps its note
        assert "retired" in str(first_outcome["error"]) and note_ids_of(a) == {min(notes)}


# Property: random edits on a generated project ---------------------------------------------------------------------


class CodebookModel:
    """The expected state, kept by hand: which modes each note carries, each mode's name and whether it is retired."""

    def __init__(self, project: Project) -> None:
        self.note_trace = dict(Note.objects.filter(trace__project=project).values_list("id", "trace_id"))
        self.note_modes: dict[int, set[int]] = defaultdict(set)
        for note_id, mode_id in NoteFailureMode.objects.filter(note_id__in=self.note_trace).values_list(
            "note_id", "failure_mode_id"
        ):
            self.note_modes[note_id].add(mode_id)
        modes = FailureMode.objects.filter(project=project)
        self.names = {mode.pk: mode.name for mode in modes}
        self.retired = {mode.pk for mode in modes if mode.is_retired}

    def notes_of(self, mode_id: int) -> set[int]:
        return {note for note, modes in self.note_modes.items() if mode_id in modes}

    def traces_of(self, mode_id: int) -> set[int]:
        return {self.note_trace[note] for note in self.notes_of(mode_id)}


def trace_mode_names(project: Project) -> dict[int, frozenset[str]]:
    names: dict[int, set[str]] = defaultdict(set)
    rows = NoteFailureMode.objects.filter(failure_mode__project=project).values_list("trace_id", "failure_mode__name")
    for trace_id, name in rows:
        names[trace_id].add(name)
    return {trace_id: frozenset(values) for trace_id, values in names.items()}


def assert_database_matches(project: Project, model: CodebookModel) -> None:
    actual: dict[int, set[int]] = defaultdict(set)
    for note_id, mode_id, trace_id in NoteFailureMode.objects.filter(failure_mode__project=project).values_list(
        "note_id", "failure_mode_id", "trace_id"
    ):
        assert trace_id == model.note_trace[note_id], "a link must carry its note's trace"
        actual[note_id].add(mode_id)
    assert {k: v for k, v in actual.items() if v} == {k: v for k, v in model.note_modes.items() if v}
    modes = FailureMode.objects.filter(project=project)
    assert {mode.pk: mode.name for mode in modes} == model.names
    assert {mode.pk for mode in modes if mode.is_retired} == model.retired


def random_edit(rng: random.Random, project: Project, model: CodebookModel, actor: User, serial: int) -> dict:
    """Pick and run one edit (sometimes a bad one on purpose); update the model; say what was expected."""
    mode_ids = sorted(model.names)
    kind = rng.choices(["rename", "merge", "split", "retire", "restore"], weights=[3, 4, 4, 1, 1])[0]
    mode = FailureMode.objects.get(pk=rng.choice(mode_ids))
    if kind == "rename":
        clash = rng.random() < 0.2 and len(mode_ids) > 1
        if clash:
            other = model.names[rng.choice([m for m in mode_ids if m != mode.pk])]
            failure_mode_rename(mode=mode, name=other.swapcase(), actor=actor)
            return {"kind": kind}
        name = f"mode {serial}"
        failure_mode_rename(mode=mode, name=name, actor=actor)
        model.names[mode.pk] = name
        return {"kind": kind, "renamed": (mode.pk, name), "history": 1}
    if kind == "merge":
        target = FailureMode.objects.get(pk=rng.choice(mode_ids))
        before_traces = model.traces_of(mode.pk) | model.traces_of(target.pk)
        before_notes = model.notes_of(mode.pk) | model.notes_of(target.pk)
        touched = model.traces_of(mode.pk)
        failure_mode_merge(source=mode, target=target, actor=actor)  # raises for self, retired: nothing applied
        for modes in model.note_modes.values():
            if mode.pk in modes:
                modes.discard(mode.pk)
                modes.add(target.pk)
        model.retired.add(mode.pk)
        return {
            "kind": kind,
            "touched": touched,
            "history": 2,
            "expect_counts": {target.pk: (len(before_traces), len(before_notes)), mode.pk: None},
        }
    if kind == "split":
        notes = sorted(model.notes_of(mode.pk))
        chosen = rng.sample(notes, rng.randint(1, len(notes))) if notes else []
        if rng.random() < 0.1:
            chosen.append(max(model.note_trace) + 1000)  # a stale id
        keep, confirm_all = rng.random() < 0.3, rng.random() < 0.5
        created = failure_mode_split(
            mode=mode,
            new_name=f"split {serial}",
            new_definition="",
            note_ids=chosen,
            actor=actor,
            keep=keep,
            confirm_all=confirm_all,
        )
        assert chosen and (set(chosen) != set(notes) or confirm_all), "a refused split must raise"
        model.names[created.pk] = created.name
        for note in chosen:
            model.note_modes[note].add(created.pk)
            if not keep:
                model.note_modes[note].discard(mode.pk)
        return {
            "kind": kind,
            "touched": {model.note_trace[note] for note in chosen},
            "history": 2,
            "expect_counts": {
                created.pk: (len(model.traces_of(created.pk)), len(chosen)),
                mode.pk: (len(model.traces_of(mode.pk)), len(model.notes_of(mode.pk))),
            },
        }
    if kind == "retire":
        failure_mode_retire(mode=mode, actor=actor)
        model.retired.add(mode.pk)
        return {"kind": kind, "history": 1}
    failure_mode_restore(mode=mode, actor=actor)
    model.retired.discard(mode.pk)
    return {"kind": kind, "history": 1}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_edits_keep_every_untouched_trace_and_the_counts_consistent(seed, expert):
    rng = random.Random(seed)
    project = make_project(slug=f"prop-{seed}", expert=expert)
    traces = [make_trace(project=project, external_id=f"p{seed}-{i}") for i in range(40)]
    modes = [new_mode(project, f"seed mode {i}") for i in range(8)]
    for i in range(120):
        note = make_note(trace=rng.choice(traces), author=expert, text=f"note {i}")
        code_note(note, *rng.sample(modes, rng.randint(0, 3)))
    model = CodebookModel(project)
    outcomes: dict[str, int] = defaultdict(int)

    for serial in range(80):
        names_before = trace_mode_names(project)
        names_by_id_before = dict(model.names)
        counts_before = counts_by_id(project)
        history_before = FailureModeChange.objects.filter(project=project).count()
        try:
            with transaction.atomic():
                expected = random_edit(rng, project, model, expert, serial)
        except DomainError:
            # A refused edit changes nothing at all.
            outcomes["refused"] += 1
            assert trace_mode_names(project) == names_before
            assert counts_by_id(project) == counts_before
            assert FailureModeChange.objects.filter(project=project).count() == history_before
            assert_database_matches(project, model)
            continue
        outcomes[expected["kind"]] += 1
        assert_database_matches(project, model)
        assert FailureModeChange.objects.filter(project=project).count() == history_before + expected["history"]

        # Every trace the edit did not touch carries the same mode names, up to a rename.
        renames = (
            {names_by_id_before[mode_id]: name for mode_id, name in [expected["renamed"]]}
            if "renamed" in expected
            else {}
        )
        names_after = trace_mode_names(project)
        touched = expected.get("touched", set())
        for trace_id in set(names_before) | set(names_after):
            if trace_id not in touched:
                want = frozenset(renames.get(name, name) for name in names_before.get(trace_id, ()))
                assert names_after.get(trace_id, frozenset()) == want, (expected, trace_id)

        counts_after = counts_by_id(project)
        for mode_id, want in expected.get("expect_counts", {}).items():
            assert counts_after.get(mode_id) == want, (expected, mode_id)
        # Modes the edit did not involve keep their counts exactly.
        involved = set(expected.get("expect_counts", {}))
        for mode_id, pair in counts_before.items():
            if mode_id not in involved and mode_id in counts_after:
                assert counts_after[mode_id] == pair, (expected, mode_id)
        # Totals: every note link is accounted for.
        total_links = sum(len(modes) for modes in model.note_modes.values())
        assert sum(notes for _, notes in counts_after.values()) == total_links

    # The seeds exercise every kind of edit, refusals included; otherwise the test proves little.
    assert {"rename", "merge", "split", "refused"} <= set(outcomes), outcomes


# The page of a mode and its forms ---------------------------------------------------------------------------------

EDIT_URLS = [
    "failure_mode_rename",
    "failure_mode_redefine",
    "failure_mode_merge",
    "failure_mode_split",
    "failure_mode_retire",
    "failure_mode_restore",
]


def detail_url(mode: FailureMode) -> str:
    return reverse("failure_mode_detail", args=[mode.project.slug, mode.pk])


def edit_url(name: str, mode: FailureMode) -> str:
    return reverse(name, args=[mode.project.slug, mode.pk])


@pytest.fixture
def viewer_client(project) -> Client:
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def test_mode_page_shows_name_definition_counts_notes_and_history(project, expert, expert_client):
    mode = new_mode(project, "Hallucination", actor=expert)
    first = coded(project, expert, mode)
    coded(project, expert, mode, trace=first.trace)
    failure_mode_rename(mode=mode, name="Invented facts", actor=expert)
    response = expert_client.get(detail_url(mode))
    assert response.status_code == 200
    html = response.content.decode()
    assert "<h1>Invented facts</h1>" in html
    assert "When Hallucination shows." in html
    assert re.search(r'data-testid="trace-count">1<', html) and re.search(r'data-testid="note-count">2<', html)
    assert reverse("trace_detail", args=[project.slug, first.trace.external_id]) in html
    assert "Renamed “Hallucination” → “Invented facts”" in html
    assert "Created as “Hallucination”" in html


def test_outsider_gets_404_on_the_mode_page_and_every_edit(project, expert, outsider_client):
    mode = new_mode(project, "Tone")
    assert outsider_client.get(detail_url(mode)).status_code == 404
    for name in EDIT_URLS:
        assert outsider_client.post(edit_url(name, mode), {"name": "x"}).status_code == 404, name
    assert outsider_client.post(reverse("failure_mode_new", args=[project.slug]), {"name": "x"}).status_code == 404
    assert FailureMode.objects.get(pk=mode.pk).name == "Tone"
    assert FailureMode.objects.filter(project=project).count() == 1


def test_a_mode_of_another_project_is_404(project, expert, expert_client):
    other = make_project(slug="other", expert=make_user("someone"))
    foreign = new_mode(other, "Tone")
    url = reverse("failure_mode_detail", args=[project.slug, foreign.pk])
    assert expert_client.get(url).status_code == 404
    assert (
        expert_client.post(reverse("failure_mode_rename", args=[project.slug, foreign.pk]), {"name": "x"}).status_code
        == 404
    )


def test_viewer_reads_the_page_but_gets_403_on_every_edit(project, expert, viewer_client):
    mode = new_mode(project, "Tone")
    coded(project, expert, mode)
    response = viewer_client.get(detail_url(mode))
    assert response.status_code == 200
    assert b"Rename" not in response.content and b"split-form" not in response.content
    for name in EDIT_URLS:
        assert viewer_client.post(edit_url(name, mode), {"name": "Voice"}).status_code == 403, name
    assert viewer_client.post(reverse("failure_mode_new", args=[project.slug]), {"name": "x"}).status_code == 403
    assert FailureMode.objects.get(pk=mode.pk).name == "Tone" and not FailureMode.objects.get(pk=mode.pk).is_retired


def test_edits_need_post(project, expert_client):
    mode = new_mode(project, "Tone")
    assert expert_client.get(edit_url("failure_mode_retire", mode)).status_code == 405


def test_expert_renames_through_the_form(project, expert, expert_client):
    mode = new_mode(project, "Tone")
    response = expert_client.post(edit_url("failure_mode_rename", mode), {"name": "Voice"}, follow=True)
    assert response.redirect_chain[-1][0] == detail_url(mode)
    assert "Renamed “Tone” to “Voice”." in response.content.decode()
    assert FailureMode.objects.get(pk=mode.pk).name == "Voice"
    assert changes(mode)[-1].actor == expert


def test_engineer_merges_through_the_form(project, teammate, teammate_client):
    source, target = new_mode(project, "Tone"), new_mode(project, "Voice")
    note = coded(project, teammate, source)
    response = teammate_client.post(edit_url("failure_mode_merge", source), {"target": target.pk}, follow=True)
    html = response.content.decode()
    assert "Merged “Tone” into “Voice”" in html
    assert "merged into" in html and detail_url(target) in html  # the retired source says where it went
    assert note_ids_of(target) == {note.pk}
    assert changes(source)[-1].actor == teammate


def test_a_refused_edit_shows_its_reason_on_the_page(project, expert, expert_client):
    new_mode(project, "Voice")
    mode = new_mode(project, "Tone")
    response = expert_client.post(edit_url("failure_mode_rename", mode), {"name": "voice"}, follow=True)
    assert response.status_code == 200
    assert "Rename: A failure mode named “voice” already exists in this project" in response.content.decode()
    response = expert_client.post(edit_url("failure_mode_merge", mode), {"target": "abc"}, follow=True)
    assert "Merge: Choose the failure mode to merge into" in response.content.decode()
    response = expert_client.post(edit_url("failure_mode_merge", mode), {"target": "999999"}, follow=True)
    assert "Merge: Failure mode #999999 no longer exists in this project" in response.content.decode()
    response = expert_client.post(
        edit_url("failure_mode_split", mode), {"new_name": "x", "note": "1; drop"}, follow=True
    )
    assert "Split: Note id “1; drop” is not a number" in response.content.decode()
    assert FailureMode.objects.get(pk=mode.pk).name == "Tone"


@pytest.mark.parametrize("bad", ["²", "1e3", "-1", "9" * 30, " 1"])
def test_odd_ids_in_forms_and_cursors_get_a_clear_answer(project, expert, expert_client, bad):
    mode = new_mode(project, "Tone")
    coded(project, expert, mode)
    assert expert_client.get(detail_url(mode), {"after": bad}).status_code == 200
    response = expert_client.post(edit_url("failure_mode_merge", mode), {"target": bad}, follow=True)
    assert "Merge: Choose the failure mode to merge into" in response.content.decode()
    response = expert_client.post(edit_url("failure_mode_split", mode), {"new_name": "x", "note": bad}, follow=True)
    assert "Split: Note id" in response.content.decode() and "is not a number" in response.content.decode()
    huge = reverse("failure_mode_detail", args=[project.slug, 10**30])
    assert expert_client.get(huge).status_code == 404


def test_htmx_edit_swaps_the_region_and_keeps_what_was_typed_on_error(project, expert, expert_client):
    new_mode(project, "Voice")
    mode = new_mode(project, "Tone")
    htmx = {"HTTP_HX_REQUEST": "true"}
    response = expert_client.post(edit_url("failure_mode_rename", mode), {"name": "VOICE"}, **htmx)
    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and 'id="mode-page"' in html
    assert "already exists" in html and 'value="VOICE"' in html
    response = expert_client.post(edit_url("failure_mode_rename", mode), {"name": "Register"}, **htmx)
    assert (
        "Renamed “Tone” to “Register”." in response.content.decode()
        and "<h1>Register</h1>" in response.content.decode()
    )


def test_split_through_the_form(project, expert, expert_client):
    mode = new_mode(project, "Hallucination")
    a, b, c = (coded(project, expert, mode) for _ in range(3))
    page = expert_client.get(detail_url(mode)).content.decode()
    for note in (a, b, c):
        assert f'name="note" value="{note.pk}" form="split-form"' in page
    data = {"new_name": "Numbers", "new_definition": "Invented figures.", "note": [str(a.pk), str(b.pk)]}
    response = expert_client.post(edit_url("failure_mode_split", mode), data, follow=True)
    assert "the new failure mode “Numbers”" in response.content.decode()
    created = FailureMode.objects.get(project=project, name="Numbers")
    assert note_ids_of(created) == {a.pk, b.pk} and note_ids_of(mode) == {c.pk}
    everything = {"new_name": "All", "note": [str(c.pk)]}
    response = expert_client.post(edit_url("failure_mode_split", mode), everything, follow=True)
    assert "Split: All 1 notes of “Hallucination” are chosen" in response.content.decode()
    response = expert_client.post(edit_url("failure_mode_split", mode), {**everything, "confirm_all": "on"})
    assert response.status_code == 302 and note_ids_of(mode) == set()


def test_retire_and_restore_through_the_form(project, expert, expert_client):
    mode = new_mode(project, "Tone")
    expert_client.post(edit_url("failure_mode_retire", mode))
    html = expert_client.get(detail_url(mode)).content.decode()
    assert FailureMode.objects.get(pk=mode.pk).is_retired and "badge-retired" in html
    assert edit_url("failure_mode_restore", mode) in html and edit_url("failure_mode_merge", mode) not in html
    expert_client.post(edit_url("failure_mode_restore", mode))
    assert not FailureMode.objects.get(pk=mode.pk).is_retired


def test_note_text_is_escaped_on_the_mode_page(project, expert, expert_client):
    mode = new_mode(project, "<b>bold</b>")
    note = make_note(trace=make_trace(project=project), author=expert, text="<script>alert(1)</script>")
    code_note(note, mode)
    html = expert_client.get(detail_url(mode)).content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<b>bold</b>" not in html


def test_notes_are_paginated_newest_first(project, expert, expert_client):
    mode = new_mode(project, "Tone")
    trace = make_trace(project=project)
    notes = [coded(project, expert, mode, trace=trace) for _ in range(53)]
    first = expert_client.get(detail_url(mode)).content.decode()
    shown = [int(n) for n in re.findall(r'name="note" value="(\d+)"', first)]
    assert shown == [note.pk for note in reversed(notes)][:50]
    older = re.search(r'href="([^"]+\?after=\d+)"', first).group(1)
    second = expert_client.get(older.replace("&amp;", "&")).content.decode()
    assert [int(n) for n in re.findall(r'name="note" value="(\d+)"', second)] == [n.pk for n in reversed(notes[:3])]
    assert "?after=" not in second


def test_mode_page_queries_do_not_grow_with_its_notes(project, expert, expert_client, django_assert_max_num_queries):
    mode = new_mode(project, "Tone")
    for _ in range(3):
        coded(project, expert, mode)
    with CaptureQueriesContext(connection) as few:
        expert_client.get(detail_url(mode))
    for _ in range(40):
        coded(project, expert, mode)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert expert_client.get(detail_url(mode)).status_code == 200


def test_new_failure_mode_form_on_the_list_page(project, expert, expert_client):
    listing = expert_client.get(reverse("failure_mode_list", args=[project.slug])).content.decode()
    assert reverse("failure_mode_new", args=[project.slug]) in listing
    response = expert_client.post(
        reverse("failure_mode_new", args=[project.slug]), {"name": "Tone", "definition": "Too casual."}
    )
    mode = FailureMode.objects.get(project=project, name="Tone")
    assert response.status_code == 302 and response["Location"] == detail_url(mode)
    assert mode.definition == "Too casual." and changes(mode)[0].actor == expert
    listing = expert_client.get(reverse("failure_mode_list", args=[project.slug])).content.decode()
    assert f'href="{detail_url(mode)}"' in listing
    response = expert_client.post(reverse("failure_mode_new", args=[project.slug]), {"name": "TONE"}, follow=True)
    assert "New failure mode: A failure mode named “TONE” already exists" in response.content.decode()
    assert FailureMode.objects.filter(project=project).count() == 1


def test_csrf_is_enforced_on_edits(project, expert):
    mode = new_mode(project, "Tone")
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    assert client.post(edit_url("failure_mode_rename", mode), {"name": "Voice"}).status_code == 403
    assert FailureMode.objects.get(pk=mode.pk).name == "Tone"
    page = client.get(detail_url(mode)).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = client.post(edit_url("failure_mode_rename", mode), {"name": "Voice", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and FailureMode.objects.get(pk=mode.pk).name == "Voice"


# Migration 0006: links that existed before got their trace ---------------------------------------------------------

BEFORE_LINK_TRACE = ("annotation", "0005_trace_project_no_separate_index")
AFTER_LINK_TRACE = ("annotation", "0006_note_failure_mode_link")


@pytest.mark.django_db(transaction=True)
def test_migration_0006_fills_the_trace_of_existing_links():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE_LINK_TRACE])
    try:
        old = executor.loader.project_state([BEFORE_LINK_TRACE]).apps
        user = old.get_model("auth", "User").objects.create(username="legacy")
        project = old.get_model("annotation", "Project").objects.create(slug="legacy", name="Legacy")
        OldTrace, OldNote = old.get_model("annotation", "Trace"), old.get_model("annotation", "Note")
        traces = [OldTrace.objects.create(project=project, external_id=f"t{i}") for i in range(2)]
        notes = [OldNote.objects.create(trace=traces[i % 2], author=user, text=f"n{i}") for i in range(3)]
        mode = old.get_model("annotation", "FailureMode").objects.create(project=project, name="Tone")
        with connection.cursor() as cursor:
            for note in notes:
                cursor.execute(
                    "INSERT INTO annotation_note_failure_modes (note_id, failuremode_id) VALUES (%s, %s)",
                    [note.pk, mode.pk],
                )
        executor.loader.build_graph()
        executor.migrate([AFTER_LINK_TRACE])
        with connection.cursor() as cursor:
            cursor.execute("SELECT note_id, trace_id FROM annotation_note_failure_modes ORDER BY note_id")
            rows = cursor.fetchall()
        assert rows == [(note.pk, note.trace_id) for note in notes]
        assert {trace_id for _, trace_id in rows} == {traces[0].pk, traces[1].pk}
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
