"""The reliability numbers read first verdicts from what each label change records (its criterion, whether it is the
label's first entry) and count in the database: the counts must be those of the whole history, exactly (the page
at a million traces: bench/reliability.py)."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from annotation.ingest import import_records
from annotation.models import LabelChange, SelfReview
from annotation.services import LabelContext, label_submit
from judges.reliability import _weighted_median, drift, fatigue, self_agreement
from tests.factories import make_criterion, make_trace

pytestmark = pytest.mark.django_db


def _submit(trace, criterion, expert, verdict: str, critique: str = "", **context) -> None:
    label_submit(
        trace=trace,
        criterion=criterion,
        verdict=verdict,
        critique=critique,
        user=expert,
        context=LabelContext(**context),
    )


def test_only_a_labels_first_entry_is_marked_first_and_each_records_its_criterion(project, expert):
    criterion = make_criterion(project=project, name="tone")
    trace = make_trace(project=project, external_id="t-1")
    _submit(trace, criterion, expert, "pass", sitting_position=1, via="random")
    _submit(trace, criterion, expert, "pass", "A critique typed after the verdict.")  # coalesced into the first
    _submit(trace, criterion, expert, "fail")
    entries = list(LabelChange.objects.order_by("id").values_list("verdict", "is_first", "criterion_id"))
    assert entries == [("pass", True, criterion.pk), ("fail", False, criterion.pk)]


def test_an_imported_label_is_first_and_a_reimported_change_is_not(project, expert):
    make_criterion(project=project, name="tone")
    record = {"id": "t-1", "input": "q", "labels": [{"criterion": "tone", "verdict": "pass"}]}
    import_records(project=project, records=[record])
    changed = {**record, "labels": [{"criterion": "tone", "verdict": "fail"}]}
    import_records(project=project, records=[changed], on_conflict="update")
    assert list(LabelChange.objects.order_by("id").values_list("verdict", "is_first")) == [
        ("pass", True),
        ("fail", False),
    ]
    [item] = drift(project=project)
    assert (item.labels, item.changed_later) == (1, 1)


def test_changed_later_counts_a_verdict_changed_back_but_not_a_critique_edit(project, expert):
    criterion = make_criterion(project=project, name="tone")
    back, edited, steady = (make_trace(project=project, external_id=name) for name in ("back", "edited", "steady"))
    for verdict in ("pass", "fail", "pass"):
        _submit(back, criterion, expert, verdict)
    _submit(edited, criterion, expert, "fail", "Short.")
    # A later edit of the critique under the same verdict, outside the coalescing window: a second entry.
    LabelChange.objects.filter(label__trace=edited).update(changed_at=datetime(2026, 1, 1, tzinfo=UTC))
    _submit(edited, criterion, expert, "fail", "Claims a refund window the policy does not have.")
    _submit(steady, criterion, expert, "pass")
    assert LabelChange.objects.filter(label__trace=edited).count() == 2
    [item] = drift(project=project)
    assert (item.labels, item.changed_later) == (3, 1)


def test_fatigue_medians_are_exact_with_ties_and_an_even_count(project, expert):
    criterion = make_criterion(project=project, name="tone")
    seconds = [10.0, 20.0, 20.0, 45.5, 8.0, 8.0]  # positions 1–4 (even count, a tie); 21–22 (a tie)
    positions = [1, 2, 3, 4, 21, 22]
    for i, (position, spent) in enumerate(zip(positions, seconds, strict=True)):
        trace = make_trace(project=project, external_id=f"t-{i}")
        verdict = "fail" if i == 0 else "pass"
        _submit(trace, criterion, expert, verdict, sitting_position=position, seconds_on_trace=spent)
    untimed = make_trace(project=project, external_id="untimed")
    _submit(untimed, criterion, expert, "fail", sitting_position=5)  # counted, but has no time on the trace
    rows = fatigue(project=project)
    assert [(row.label, row.n, row.fails, row.median_seconds) for row in rows] == [
        ("1–20", 5, 2, statistics.median([10.0, 20.0, 20.0, 45.5])),
        ("21–40", 2, 0, 8.0),
    ]


def test_a_re_review_of_a_label_given_outside_a_sitting_counts_in_no_fatigue_row(project, expert):
    criterion = make_criterion(project=project, name="tone")
    sat, imported = make_trace(project=project, external_id="sat"), make_trace(project=project, external_id="imported")
    _submit(sat, criterion, expert, "pass", sitting_position=130)
    _submit(imported, criterion, expert, "pass")  # no position: neither its first verdict nor its re-review counts
    for trace in (sat, imported):
        then = datetime(2026, 1, 1, tzinfo=UTC)
        SelfReview.objects.create(
            trace=trace, criterion=criterion, author=expert, then_verdict="pass", then_at=then, verdict="fail"
        )
    [row] = fatigue(project=project)
    assert (row.label, row.n, row.rereviewed, row.agreed) == ("101+", 1, 1, 0)


@pytest.mark.parametrize(
    "values", [[], [3.0], [1.0, 2.0], [5.0, 1.0, 1.0], [2.5, 2.5, 7.0, 1.0], [4.0, 4.0, 4.0, 9.0, 1.0, 1.0]]
)
def test_the_median_from_counts_is_the_median_of_the_values(values):
    counts = [(value, values.count(value)) for value in set(values)]
    assert _weighted_median(counts) == (statistics.median(values) if values else None)


def test_self_agreement_counts_months_decided_and_lists_only_open_differences(project, expert):
    criterion = make_criterion(project=project, name="tone")
    answers = [("pass", "pass", None), ("pass", "fail", None), ("fail", "pass", "then"), ("fail", "fail", None)]
    for i, (then, now, kept) in enumerate(answers):
        trace = make_trace(project=project, external_id=f"t-{i}")
        _submit(trace, criterion, expert, then)
        created = datetime(2026, 10 + i // 2, 5, tzinfo=UTC)  # two in October, two in November
        SelfReview.objects.create(
            trace=trace, criterion=criterion, author=expert, then_verdict=then, then_at=created - timedelta(days=9),
            verdict=now, created_at=created, kept=kept or "", decided_at=created if kept else None,
        )  # fmt: skip
    [item] = self_agreement(project=project)
    assert (item.n, item.agreement, item.decided) == (4, 0.5, 1)
    assert [(month, n, agreed) for month, n, agreed, _ in item.months] == [("2026-10", 2, 1), ("2026-11", 2, 1)]
    assert [review.trace.external_id for review in item.undecided] == ["t-1"]


@pytest.mark.django_db(transaction=True)
def test_the_migration_marks_each_labels_lowest_entry_first_and_copies_its_criterion():
    before = [("annotation", "0028_calibration_raters")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    try:
        old = executor.loader.project_state(before).apps
        User = old.get_model("auth", "User")
        Project, Criterion = old.get_model("annotation", "Project"), old.get_model("annotation", "Criterion")
        Trace, Label = old.get_model("annotation", "Trace"), old.get_model("annotation", "Label")
        Change = old.get_model("annotation", "LabelChange")
        expert = User.objects.create(username="expert")
        project = Project.objects.create(slug="p", name="P", expert=expert)
        tone, policy = (Criterion.objects.create(project=project, name=name) for name in ("tone", "policy"))
        trace = Trace.objects.create(project=project, external_id="t")
        labels = [Label.objects.create(trace=trace, criterion=c, verdict="pass", author=expert) for c in (tone, policy)]
        for label, verdicts in zip(labels, (("pass", "fail", "pass"), ("pass",)), strict=True):
            for verdict in verdicts:
                Change.objects.create(label=label, verdict=verdict, author=expert)

        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

        entries = LabelChange.objects.order_by("id").values_list("criterion_id", "is_first")
        assert list(entries) == [(tone.pk, True), (tone.pk, False), (tone.pk, False), (policy.pk, True)]
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_admin_shows_a_labels_history_without_editing_its_criterion_or_first_flag(project, expert, client):
    from django.contrib.auth.models import User

    from annotation.models import Label

    criterion = make_criterion(project=project, name="tone")
    _submit(make_trace(project=project, external_id="t-1"), criterion, expert, "fail")
    client.force_login(User.objects.create_superuser("root", password="pw-for-tests-only"))
    page = client.get(f"/admin/annotation/label/{Label.objects.get().pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="changes-0-criterion"' not in html and 'name="changes-0-is_first"' not in html  # read-only
    assert 'name="changes-MAX_NUM_FORMS" value="0"' in html  # no entry added here
