"""The reads behind the suites pages and the bulk removal from the golden set, asserted on values."""

from __future__ import annotations

import pytest

from judges.services import judge_create
from suites.golden import golden_add, golden_current_version, golden_entries, golden_remove_by_ids
from suites.models import GoldenSet, SuiteCase, SuiteRun, SuiteVerdict
from suites.selectors import (
    golden_history_page,
    golden_members_page,
    suite_flipped_cases,
    suite_paired_counts,
    suite_pass_counts,
    suite_run_comparison,
    suite_run_failures,
    suite_run_of,
    suite_runs,
)
from tests.factories import make_criterion, make_project, make_trace

pytestmark = pytest.mark.django_db
CHECK = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}


# --- the golden set ------------------------------------------------------------------------------------------------


@pytest.fixture
def golden(project, expert):
    """v1 adds g-0..g-4 as core features, v2 adds g-5, g-6 as edge cases, v3 removes g-1."""
    traces = [make_trace(project=project, external_id=f"g-{i}") for i in range(7)]
    golden_add(project=project, traces=traces[:5], reason="core_feature", user=expert)
    golden_add(project=project, traces=traces[5:], reason="edge_case", user=expert)
    golden_remove_by_ids(project=project, trace_ids=[traces[1].pk], user=expert)
    return traces


def ids(page) -> list[str]:
    return [entry.trace.external_id for entry in page.members]


def test_members_come_newest_first_a_page_at_a_time_per_version_and_reason(project, golden):
    first = golden_members_page(project=project, version=3, size=4)
    assert ids(first) == ["g-6", "g-5", "g-4", "g-3"] and first.next_after is not None
    rest = golden_members_page(project=project, version=3, after=first.next_after, size=4)
    assert ids(rest) == ["g-2", "g-0"] and rest.next_after is None
    assert ids(golden_members_page(project=project, version=3, reason="edge_case", size=10)) == ["g-6", "g-5"]
    assert ids(golden_members_page(project=project, version=1, size=10)) == ["g-4", "g-3", "g-2", "g-1", "g-0"]


def test_history_comes_newest_first_a_page_at_a_time_with_the_shown_versions_record(project, golden):
    page = golden_history_page(project=project, shown=3, size=2)
    assert [v.number for v in page.versions] == [3, 2] and page.older_than == 2 and page.shown.number == 3
    older = golden_history_page(project=project, shown=1, before=page.older_than, size=2)
    assert [v.number for v in older.versions] == [1] and older.older_than is None
    # A version off the page is still found for the heading.
    assert golden_history_page(project=project, shown=1, size=1).shown.size == 5


def test_removing_by_ids_ignores_other_projects_traces_and_says_whether_a_version_was_made(project, golden, expert):
    stranger = make_trace(project=make_project(slug="other"), external_id="x")
    assert golden_current_version(project=project) == 3
    removal = golden_remove_by_ids(project=project, trace_ids=[golden[0].pk, golden[2].pk, stranger.pk], user=expert)
    assert (removal.traces, removal.version, removal.changed) == (2, 4, True)
    assert sorted(e.trace.external_id for e in golden_entries(project=project)) == ["g-3", "g-4", "g-5", "g-6"]
    again = golden_remove_by_ids(project=project, trace_ids=[golden[0].pk], user=expert)
    assert (again.traces, again.version, again.changed) == (1, 4, False)
    nothing = golden_remove_by_ids(project=project, trace_ids=[stranger.pk], user=expert)
    assert (nothing.traces, nothing.version, nothing.changed) == (0, 4, False)


def test_removing_nothing_from_a_project_without_a_set_creates_none(project, expert):
    assert golden_remove_by_ids(project=project, trace_ids=[], user=expert).version == 0
    assert not GoldenSet.objects.filter(project=project).exists()


# --- suite runs ----------------------------------------------------------------------------------------------------


def make_run(project, name: str, **fields) -> SuiteRun:
    return SuiteRun.objects.create(project=project, name=name, golden_version=1, status=SuiteRun.Status.DONE, **fields)


def add_verdict(run, trace, criterion, version, verdict: str, baseline: str = "", output: str = "candidate") -> None:
    case, _ = SuiteCase.objects.get_or_create(run=run, trace=trace, defaults={"output": output})
    SuiteVerdict.objects.create(
        case=case, criterion=criterion, judge_version=version, verdict=verdict, baseline_verdict=baseline,
        error="" if verdict else "timeout",
    )  # fmt: skip


@pytest.fixture
def runs(project):
    """tone: 3 pass→fail, 1 fail→pass, 6 pass→pass; a case only in A; an error in B."""
    tone = make_criterion(project=project, name="tone", position=1)
    version = judge_create(project=project, criterion=tone, name="t", kind="assertion", config=CHECK).latest_version()
    a, b = make_run(project, "r1"), make_run(project, "r2")
    pairs = [("pass", "fail")] * 3 + [("fail", "pass")] + [("pass", "pass")] * 6
    for i, (va, vb) in enumerate(pairs):
        trace = make_trace(project=project, external_id=f"c-{i:02d}")
        add_verdict(a, trace, tone, version, va)
        add_verdict(b, trace, tone, version, vb)
    add_verdict(a, make_trace(project=project, external_id="only-a"), tone, version, "pass")
    errored = make_trace(project=project, external_id="err")
    add_verdict(a, errored, tone, version, "fail")
    add_verdict(b, errored, tone, version, "")
    return tone, a, b


def test_pass_counts_leave_errors_out_and_pairs_need_a_verdict_in_both_runs(runs):
    tone, a, b = runs
    assert suite_pass_counts(run=a) == {tone.pk: (10, 12)}
    assert suite_pass_counts(run=b) == {tone.pk: (7, 10)}
    assert suite_paired_counts(run_a=a, run_b=b) == {
        tone.pk: {("pass", "fail"): 3, ("fail", "pass"): 1, ("pass", "pass"): 6}
    }


def test_flips_come_pass_to_fail_first_up_to_the_limit(runs):
    _, a, b = runs
    flips = suite_flipped_cases(run_a=a, run_b=b, limit=10)
    assert [(f["external_id"], f["a"], f["b"]) for f in flips] == [
        ("c-00", "pass", "fail"),
        ("c-01", "pass", "fail"),
        ("c-02", "pass", "fail"),
        ("c-03", "fail", "pass"),
    ]
    assert len(suite_flipped_cases(run_a=a, run_b=b, limit=2)) == 2


def test_the_comparison_has_a_row_per_criterion_the_flips_with_their_criterion_and_the_totals(project, runs):
    tone, a, b = runs
    compared = suite_run_comparison(project=project, run_a=a, run_b=b, flips_shown=3)
    assert (compared.name_a, compared.name_b) == ("r1", "r2")
    (row,) = compared.rows
    assert row.criterion == tone and (row.c.paired, row.c.pass_to_fail, row.c.fail_to_pass) == (10, 3, 1)
    assert (row.c.a.passes, row.c.a.n, row.c.b.passes, row.c.b.n) == (10, 12, 7, 10)
    assert [f["external_id"] for f in compared.flips] == ["c-00", "c-01", "c-02"]
    assert {f["criterion"] for f in compared.flips} == {tone} and compared.flips_capped
    assert (compared.total_flips, compared.regressions) == (4, 0)
    # Served again from the cache (both runs finished), the answer is the same.
    assert suite_run_comparison(project=project, run_a=a, run_b=b, flips_shown=3) == compared
    assert not suite_run_comparison(project=project, run_a=a, run_b=b, flips_shown=4).flips_capped


def test_two_runs_of_one_name_are_told_apart_by_number(project):
    a, b = make_run(project, "nightly"), make_run(project, "nightly")
    compared = suite_run_comparison(project=project, run_a=a, run_b=b, flips_shown=5)
    assert (compared.name_a, compared.name_b) == (f"nightly (#{a.pk})", f"nightly (#{b.pk})")
    unnamed = make_run(project, "")
    assert suite_run_comparison(project=project, run_a=a, run_b=unnamed, flips_shown=5).name_b == f"run #{unnamed.pk}"
    assert (compared.rows, compared.flips, compared.total_flips) == ([], [], 0)


def test_runs_are_listed_newest_first_and_found_only_in_their_project(project, runs):
    _, a, b = runs
    assert list(suite_runs(project=project)) == [b, a]
    assert suite_run_of(project=project, run_id=a.pk) == a
    assert suite_run_of(project=make_project(slug="other"), run_id=a.pk) is None


def test_failures_per_criterion_put_regressions_first_and_count_every_failure(project):
    tone = make_criterion(project=project, name="tone", position=1)
    version = judge_create(project=project, criterion=tone, name="t", kind="assertion", config=CHECK).latest_version()
    run = make_run(project, "r", summary={"criteria": [{"criterion_id": tone.pk, "verdict": "regression"},
                                                       {"criterion_id": 0, "verdict": "pass"}]})  # fmt: skip
    outcomes = [("fail", "fail"), ("fail", "pass"), ("", ""), ("pass", "pass"), ("fail", "pass")]
    for i, (verdict, baseline) in enumerate(outcomes):
        trace = make_trace(project=project, external_id=f"f-{i}", output=f"stored {i}")
        add_verdict(run, trace, tone, version, verdict, baseline=baseline, output=f"new {i}")
    tone_failures, deleted = suite_run_failures(run=run, limit=3)
    assert tone_failures.failing_count == 4
    assert [(c.external_id, c.verdict, c.regressed) for c in tone_failures.cases] == [
        ("f-1", "fail", True),
        ("f-4", "fail", True),
        ("f-0", "fail", False),
    ]
    # Without a baseline run, a case's baseline output is the golden trace's own.
    assert (tone_failures.cases[0].output, tone_failures.cases[0].baseline_output) == ("new 1", "stored 1")
    assert (deleted.row["criterion_id"], deleted.cases, deleted.failing_count) == (0, [], 0)
