"""The reads behind the comparison page: which runs may be compared, the joined counts, the excluded traces, the
differing traces, and the comparison measured against the project's bar. Splits are chosen per trace, so every
count is exact."""

from __future__ import annotations

import pytest

from annotation.services import label_submit
from judges.models import Judgment
from judges.pages import judge_run_comparison
from judges.promotions import promotion_bar_set
from judges.selectors import (
    NOT_JUDGED,
    RunPairError,
    comparable_run,
    compare_counts,
    comparison_exclusions,
    differing_traces,
    judge_choices,
    latest_comparable_run,
    run_pair_check,
    split_key,
)
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_version_create
from judges.splits import split_of
from judges.stats import labels_needed
from tests.factories import make_criterion, make_label, make_project, make_trace

pytestmark = pytest.mark.django_db
EXACT = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
LOOSE = {"check": "contains", "value": "sorry,", "ignore_case": True, "must_contain": False}
# On dev: 6 passes, 4 fails caught by both versions, 3 fails only the exact version catches.
DEV_OUTPUTS = [("Done.", "pass")] * 6 + [("Sorry, no.", "fail")] * 4 + [("Sorry for this.", "fail")] * 3


@pytest.fixture
def criterion(project):
    criterion = make_criterion(project=project, name="no_apology")
    key = split_key(criterion)
    dev_ids = [f"t-{i:03d}" for i in range(300) if split_of(key, f"t-{i:03d}") == "dev"]
    for external_id, (output, verdict) in zip(dev_ids, DEV_OUTPUTS, strict=False):
        make_label(trace=make_trace(project=project, external_id=external_id, output=output), criterion=criterion,
                   verdict=verdict)  # fmt: skip
    return criterion


@pytest.fixture
def runs(project, criterion):
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=LOOSE)
    v2 = judge_version_create(judge=judge, config=EXACT, comment="catch every apology")
    run_a = judge_run_execute(run=judge_run_create(version=judge.versions.get(number=1), split="dev"))
    run_b = judge_run_execute(run=judge_run_create(version=v2, split="dev"))
    return judge, run_a, run_b


def test_the_joined_counts_are_expert_a_b_triples(runs):
    _, run_a, run_b = runs
    counts = compare_counts(run_a=run_a, run_b=run_b)
    assert counts == {("pass", "pass", "pass"): 6, ("fail", "fail", "fail"): 4, ("fail", "pass", "fail"): 3}
    assert comparison_exclusions(counts) == {"only_a": 0, "only_b": 0, "skipped": 0, "errors": 0}


def test_a_trace_judged_by_one_run_or_with_an_error_is_counted_apart(runs):
    _, run_a, run_b = runs
    judged_b = list(Judgment.objects.filter(run=run_b, verdict="pass").order_by("trace_id"))
    judged_b[0].delete()
    Judgment.objects.filter(pk=judged_b[1].pk).update(verdict="", error="timeout")
    counts = compare_counts(run_a=run_a, run_b=run_b)
    assert counts[("pass", "pass", NOT_JUDGED)] == 1 and counts[("pass", "pass", "")] == 1
    assert comparison_exclusions(counts) == {"only_a": 1, "only_b": 0, "skipped": 0, "errors": 1}


def test_a_changed_label_moves_the_cached_counts(runs, criterion, expert):
    _, run_a, run_b = runs
    compare_counts(run_a=run_a, run_b=run_b)
    trace = Judgment.objects.filter(run=run_b, verdict="pass").first().trace
    label_submit(trace=trace, criterion=criterion, verdict="fail", critique="Not fine.", user=expert)
    assert compare_counts(run_a=run_a, run_b=run_b)[("fail", "pass", "pass")] == 1


def test_differing_traces_come_in_trace_order_after_the_cursor_with_who_was_right(runs):
    _, run_a, run_b = runs
    rows = differing_traces(run_a=run_a, run_b=run_b, after_trace_id=None, limit=10)
    assert len(rows) == 3 and [r["trace_id"] for r in rows] == sorted(r["trace_id"] for r in rows)
    assert {(r["expert"], r["a"], r["b"], r["right"]) for r in rows} == {("fail", "pass", "fail", "b")}
    assert differing_traces(run_a=run_a, run_b=run_b, after_trace_id=rows[0]["trace_id"], limit=1) == [rows[1]]


def test_the_comparison_names_the_versions_and_measures_against_the_project_bar(project, runs, expert):
    judge, run_a, run_b = runs
    compared = judge_run_comparison(run_a=run_a, run_b=run_b)
    assert (compared.name_a, compared.name_b, compared.criterion.name) == ("v1", "v2", "no_apology")
    assert (compared.comparison.n, compared.comparison.only_a_right, compared.comparison.only_b_right) == (13, 0, 3)
    assert compared.excluded == {"only_a": 0, "only_b": 0, "skipped": 0, "errors": 0}
    # Not significant on 13 traces: the verdict says how many labels v2's rates need to clear the bar.
    needs = f"its TNR of 100% needs {labels_needed(1.0, 0.9)} fail labels (these runs share 7)"
    assert needs in compared.comparison.verdict
    promotion_bar_set(project=project, min_tpr=0.9, min_tnr=0.8, user=expert)
    run_a.version.judge.project.refresh_from_db()  # as the next request would read it
    lower = f"its TNR of 100% needs {labels_needed(1.0, 0.8)} fail labels (these runs share 7)"
    assert labels_needed(1.0, 0.8) < labels_needed(1.0, 0.9)
    assert lower in judge_run_comparison(run_a=run_a, run_b=run_b).comparison.verdict


def test_two_runs_of_one_version_are_told_apart_by_run(runs):
    judge, run_a, _ = runs
    again = judge_run_execute(run=judge_run_create(version=run_a.version, split="dev"))
    compared = judge_run_comparison(run_a=run_a, run_b=again)
    assert (compared.name_a, compared.name_b) == (f"v1 (run #{run_a.pk})", f"v1 (run #{again.pk})")


def test_only_finished_runs_of_the_project_and_of_one_criterion_may_be_compared(project, runs):
    judge, run_a, run_b = runs
    assert comparable_run(project=project, run_id=run_a.pk, name="a") == run_a
    queued = judge_run_create(version=run_a.version, split="dev")
    with pytest.raises(RunPairError, match=f"^b: run {queued.pk} is queued, not done; compare finished runs$"):
        comparable_run(project=project, run_id=queued.pk, name="b")
    with pytest.raises(RunPairError, match=f"^a: run {run_a.pk} is not a run of this project$"):
        comparable_run(project=make_project(slug="other"), run_id=run_a.pk, name="a")
    with pytest.raises(RunPairError, match=f"^a, b: both name run {run_a.pk}; pick two different runs$"):
        run_pair_check(run_a=run_a, run_b=run_a)
    other = judge_create(project=project, criterion=make_criterion(project=project, name="tone"), name="t",
                         kind="assertion", config=EXACT)  # fmt: skip
    other_run = judge_run_execute(run=judge_run_create(version=other.latest_version(), split="all"))
    with pytest.raises(RunPairError, match="compare judges of the same criterion$"):
        run_pair_check(run_a=run_a, run_b=other_run)
    run_pair_check(run_a=run_a, run_b=run_b)  # the same criterion: comparable


def test_a_version_is_compared_by_its_latest_finished_run_on_the_split(project, runs):
    judge, run_a, _ = runs
    latest = judge_run_execute(run=judge_run_create(version=run_a.version, split="dev"))
    found = latest_comparable_run(project=project, judge_id=judge.pk, number=1, split="dev", name="va")
    assert found == latest
    with pytest.raises(RunPairError, match="^vb: apology v1 has no finished run on test; run it there first$"):
        latest_comparable_run(project=project, judge_id=judge.pk, number=1, split="test", name="vb")
    with pytest.raises(RunPairError, match="^va: apology has no version 7$"):
        latest_comparable_run(project=project, judge_id=judge.pk, number=7, split="dev", name="va")
    with pytest.raises(RunPairError, match="^judge: 0 is not a judge of this project$"):
        latest_comparable_run(project=project, judge_id=0, number=1, split="dev", name="va")


def test_the_picker_lists_judges_with_their_latest_version_number(project, runs):
    judge, _, _ = runs
    assert [(j.name, j.latest_number, j.criterion.name) for j in judge_choices(project=project)] == [
        ("apology", 2, "no_apology")
    ]
