"""The reads behind the annotation pages (review, codebook, criteria, projects, sessions) and the regression-suite
floor's one writer, asserted on values."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.utils import timezone

from annotation.codebook import failure_mode_create, failure_mode_merge, failure_mode_rename, notes_assign
from annotation.models import FailureMode, ImportJob, Label, Project, ReviewSession, ReviewSessionTrace, Role
from annotation.selectors import (
    criterion_failure_mode_choices,
    failure_mode_history,
    failure_mode_notes_page,
    failure_mode_of,
    failure_mode_totals,
    failure_modes_merged_into,
    known_sources,
    label_history,
    last_reviewed_external_id,
    merge_targets,
    project_list_with_role,
    recent_import_jobs,
    review_session_item,
    review_session_items_page,
    review_session_of,
    review_sessions_page,
    trace_by_external_id,
    trace_criterion_row,
    trace_criterion_rows,
    trace_notes,
)
from annotation.services import (
    label_submit,
    note_create,
)
from tests.factories import add_member, make_criterion, make_note, make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


# --- the review page -----------------------------------------------------------------------------------------------


def test_criterion_rows_number_every_criterion_and_carry_the_label_and_its_history(project, expert):
    tone, facts = make_criterion(project=project, name="tone"), make_criterion(project=project, name="facts")
    trace = make_trace(project=project)
    label_submit(trace=trace, criterion=facts, verdict="fail", critique="wrong", user=expert)
    Label.objects.get().changes.update(changed_at=timezone.now() - timedelta(hours=1))  # not merged with the next
    label_submit(trace=trace, criterion=facts, verdict="pass", critique="fine", user=expert)
    rows = trace_criterion_rows(trace=trace)
    assert [(r.criterion, r.number, r.verdict) for r in rows] == [(tone, 1, ""), (facts, 2, "pass")]
    assert [(c.verdict, c.critique) for c in rows[1].history] == [("pass", "fine"), ("fail", "wrong")]
    one = trace_criterion_row(trace=trace, criterion=facts)
    assert (one.number, one.label, one.history, one.status) == (2, rows[1].label, rows[1].history, "")
    assert trace_criterion_row(trace=trace, criterion=tone).label is None


def test_label_history_keeps_the_newest_changes_up_to_the_limit(project, expert):
    criterion, trace = make_criterion(project=project), make_trace(project=project)
    label = label_submit(trace=trace, criterion=criterion, verdict="fail", critique="0", user=expert)
    for i in range(1, 4):
        label.changes.update(changed_at=timezone.now() - timedelta(hours=i))
        label_submit(trace=trace, criterion=criterion, verdict="fail" if i % 2 == 0 else "pass", critique=str(i),
                     user=expert)  # fmt: skip
    assert [c.critique for c in label_history(labels=[label], limit=2)[label.pk]] == ["3", "2"]
    assert label_history(labels=[]) == {}


def test_notes_say_whether_they_were_edited(project, expert):
    trace = make_trace(project=project)
    fresh = note_create(trace=trace, author=expert, text="fresh")
    edited = note_create(trace=trace, author=expert, text="edited")
    type(edited).objects.filter(pk=edited.pk).update(updated_at=edited.created_at + timedelta(seconds=5))
    assert {(n.text, n.was_edited) for n in trace_notes(trace=trace)} == {("fresh", False), ("edited", True)}
    assert fresh.pk in {n.pk for n in trace_notes(trace=trace)}


def test_known_sources_are_distinct_sorted_and_cached(project):
    cache.clear()
    for source in ("production", "", "eval", "production"):
        make_trace(project=project, source=source)
    assert known_sources(project=project) == ["eval", "production"]
    make_trace(project=project, source="canary")
    assert known_sources(project=project) == ["eval", "production"]  # a few minutes old is fine for suggestions


def test_the_last_reviewed_trace_and_lookups_by_id_stay_in_the_project(project, expert):
    first, second = make_trace(project=project, external_id="a"), make_trace(project=project, external_id="b")
    assert last_reviewed_external_id(project=project) is None
    now = timezone.now()
    type(first).objects.filter(pk=first.pk).update(reviewed_at=now)
    type(second).objects.filter(pk=second.pk).update(reviewed_at=now - timedelta(minutes=1))
    assert last_reviewed_external_id(project=project) == "a"
    other = make_project(slug="other")
    assert trace_by_external_id(project=project, external_id="b") == second
    assert trace_by_external_id(project=other, external_id="b") is None
    mode = failure_mode_create(project=project, name="Wrong", actor=expert)
    assert failure_mode_of(project_id=project.pk, mode_id=mode.pk) == mode
    assert failure_mode_of(project_id=other.pk, mode_id=mode.pk) is None


def test_a_review_session_and_its_items_are_found_only_in_their_project(project, expert):
    session = ReviewSession.objects.create(project=project, name="s", strategy="random", size=1, created_by=expert)
    trace, outside = make_trace(project=project), make_trace(project=project)
    item = ReviewSessionTrace.objects.create(session=session, trace=trace, position=1)
    assert review_session_of(project=project, session_id=session.pk) == session
    assert review_session_of(project=make_project(slug="other"), session_id=session.pk) is None
    assert review_session_item(session_id=session.pk, trace=trace) == item
    assert review_session_item(session_id=session.pk, trace=outside) is None


# --- a failure mode's page -----------------------------------------------------------------------------------------


def test_a_modes_notes_come_newest_first_a_page_at_a_time_with_its_totals(project, expert):
    mode = failure_mode_create(project=project, name="Wrong date", actor=expert)
    traces = [make_trace(project=project) for _ in range(2)]
    notes = [make_note(trace=traces[i % 2], author=expert, text=f"n{i}") for i in range(5)]
    notes_assign(notes=notes, failure_mode=mode)
    first = failure_mode_notes_page(mode=mode, before_note_id=None, size=3)
    assert [n.text for n in first.notes] == ["n4", "n3", "n2"] and first.is_first
    rest = failure_mode_notes_page(mode=mode, before_note_id=first.next_cursor, size=3)
    assert [n.text for n in rest.notes] == ["n1", "n0"] and rest.next_cursor is None and not rest.is_first
    assert failure_mode_totals(mode=mode) == (5, 2)


def test_a_modes_history_merged_modes_and_merge_targets(project, expert):
    target = failure_mode_create(project=project, name="Dates", actor=expert)
    source = failure_mode_create(project=project, name="Wrong year", actor=expert)
    other = failure_mode_create(project=project, name="Tone", actor=expert)
    failure_mode_rename(mode=target, name="Wrong dates", actor=expert)
    failure_mode_merge(source=source, target=target, actor=expert)
    target.refresh_from_db()
    history = failure_mode_history(mode=target, limit=10)
    assert [c.action for c in history] == ["merged", "renamed", "created"]
    assert [c.action for c in failure_mode_history(mode=target, limit=1)] == ["merged"]
    assert failure_modes_merged_into(mode=target, limit=5) == [{"id": source.pk, "name": "Wrong year"}]
    assert merge_targets(mode=target, limit=5) == [{"id": other.pk, "name": "Tone"}]  # the merged one is retired


# --- criteria ------------------------------------------------------------------------------------------------------


def test_a_criterion_links_to_current_modes_and_keeps_its_retired_one(project, expert):
    current = failure_mode_create(project=project, name="Current", actor=expert)
    retired = failure_mode_create(project=project, name="Old", actor=expert)
    FailureMode.objects.filter(pk=retired.pk).update(retired_at=timezone.now())
    assert list(criterion_failure_mode_choices(project=project)) == [current]
    assert list(criterion_failure_mode_choices(project=project, current=retired)) == [current, retired]


# --- projects ------------------------------------------------------------------------------------------------------


def test_the_project_list_says_the_users_role_in_each(project, expert, teammate):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    other = make_project(slug="other", expert=viewer)
    assert {(p.slug, p.my_role) for p in project_list_with_role(user=viewer)} == {
        ("acme", "viewer"),
        ("other", "expert"),
    }
    assert [(p.slug, p.my_role) for p in project_list_with_role(user=teammate)] == [("acme", "engineer")]
    assert other.expert == viewer


def test_recent_imports_are_the_newest_few(project, expert):
    jobs = [
        ImportJob.objects.create(
            project=project, user=expert, file_name=f"{i}.jsonl", created_at=timezone.now() - timedelta(minutes=10 - i)
        )  # fmt: skip
        for i in range(4)
    ]
    assert list(recent_import_jobs(project=project, limit=2)) == [jobs[3], jobs[2]]
    assert list(recent_import_jobs(project=Project.objects.create(slug="empty", name="e"), limit=2)) == []


# --- review sessions -----------------------------------------------------------------------------------------------


def test_sessions_come_newest_first_a_page_at_a_time(project, expert):
    now = timezone.now()
    sessions = [
        ReviewSession.objects.create(
            project=project,
            name=f"s{i}",
            strategy="random",
            size=0,
            created_by=expert,
            created_at=now - timedelta(hours=5 - i),
        )  # fmt: skip
        for i in range(5)
    ]
    first = review_sessions_page(project=project, size=3)
    assert [s.name for s in first.sessions] == ["s4", "s3", "s2"] and first.has_more
    last = first.sessions[-1]
    rest = review_sessions_page(project=project, before=(last.created_at, last.pk), size=3)
    assert [s.name for s in rest.sessions] == ["s1", "s0"] and not rest.has_more
    assert sessions[0].created_by == expert


@pytest.mark.parametrize(("strategy", "reviewed"), [("random", 2), ("disagreements", 1)])
def test_a_sessions_items_come_in_order_with_how_many_are_done(project, expert, strategy, reviewed):
    session = ReviewSession.objects.create(project=project, name="s", strategy=strategy, size=5, created_by=expert)
    for position in range(1, 6):
        trace = make_trace(project=project, external_id=f"t{position}")
        if position <= 2:
            type(trace).objects.filter(pk=trace.pk).update(reviewed_at=timezone.now())
        ReviewSessionTrace.objects.create(session=session, trace=trace, position=position,
                                          revisited_at=timezone.now() if position == 5 else None)  # fmt: skip
    page = review_session_items_page(session=session, after_position=0, size=3)
    assert [i.trace.external_id for i in page.items] == ["t1", "t2", "t3"] and page.has_more
    assert page.reviewed == reviewed
    rest = review_session_items_page(session=session, after_position=3, size=3)
    assert [i.position for i in rest.items] == [4, 5] and not rest.has_more
