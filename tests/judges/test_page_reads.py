"""The reads behind the judges page and a run's page: sections per criterion, a run's progress, and a page of
its disagreements."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from judges.models import JudgeRun, Judgment
from judges.pages import judge_list_sections
from judges.promotions import judge_version_promote
from judges.selectors import (
    judge_version_numbers,
    judge_version_pair,
    run_disagreements_page,
    run_progress,
)
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_version_create
from tests.factories import make_criterion, make_label, make_split_labels, make_trace

pytestmark = pytest.mark.django_db
APOLOGY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
# Every output ends with a full stop, so this fails them all: it disagrees with every expert pass.
ALWAYS_FAIL = {"check": "contains", "value": ".", "must_contain": False}


@pytest.fixture
def criterion(project):
    criterion = make_criterion(project=project, name="no_apology")
    # 120 traces, a quarter of them fails: every split has passes and fails, whatever the split's seed.
    for i in range(120):
        trace = make_trace(project=project, external_id=f"t-{i:03d}", output="Sorry." if i % 4 == 0 else "Done.")
        make_label(trace=trace, criterion=criterion, verdict="fail" if i % 4 == 0 else "pass")
    return criterion


@pytest.fixture
def judge(project, criterion):
    return judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=APOLOGY)


def test_sections_follow_the_criteria_with_split_counts_latest_runs_verdicts_and_the_promotion(
    project, criterion, judge, expert
):
    empty = make_criterion(project=project, name="later")
    # Enough test labels for the 95% lower bounds to clear the bar there.
    make_split_labels(
        criterion=criterion, split="test", outputs=[("Done.", "pass"), ("Sorry.", "fail")] * 40, prefix="x"
    )
    dev = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="dev"))
    test = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="test"))
    judge_version_promote(version=judge.latest_version(), user=expert)
    first, second = judge_list_sections(project=project)
    assert (first.criterion, second.criterion) == (criterion, empty)
    assert sum(p + f for _, p, f in first.splits) == 200 and sum(f for _, _, f in first.splits) == 70
    assert [split for split, _, _ in first.splits] == ["train", "dev", "test"]
    (summary,) = first.judges
    assert summary.judge == judge and [v.number for v in summary.versions] == [1]
    assert [(split, run) for split, run, _ in summary.runs] == [("train", None), ("dev", dev), ("test", test)]
    # Each run against the project's bar: dev's dozen fails are too few to show 90%, test's 40-odd are enough.
    assert [check and check.status for _, _, check in summary.runs] == [None, "short", "meets"]
    assert first.promotion.promotion.version == judge.latest_version()
    rung = first.ladder.rungs[0]
    assert (rung.test_run, rung.dev_run, rung.meets_target) == (test, dev, True)
    assert (second.judges, second.ladder, second.promotion) == ([], None, None)
    assert second.splits == [("train", 0, 0), ("dev", 0, 0), ("test", 0, 0)]


def test_a_run_over_all_traces_is_listed_after_the_splits_only_once_it_ran(project, criterion, judge):
    assert [split for split, _, _ in judge_list_sections(project=project)[0].judges[0].runs] == ["train", "dev", "test"]
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    runs = judge_list_sections(project=project)[0].judges[0].runs
    # 90 of 90 passes and 30 of 30 fails: too few fails to show a TNR of 90% (lower bound 88.4%).
    assert runs[-1][:2] == ("all", run) and runs[-1][2].status == "short"
    assert runs[-1][2].shortfall == "6 more fail labels"


def test_progress_of_a_running_run_estimates_the_rest_at_the_pace_so_far(judge):
    run = judge_run_create(version=judge.latest_version(), split="all")
    start = timezone.now() - timedelta(seconds=30)
    JudgeRun.objects.filter(pk=run.pk).update(status=JudgeRun.Status.RUNNING, started_at=start)
    run.refresh_from_db()
    traces = list(judge.criterion.labels.values_list("trace_id", flat=True)[:10])
    Judgment.objects.bulk_create([Judgment(run=run, trace_id=t, verdict="pass") for t in traces])
    progress = run_progress(run=run, now=start + timedelta(seconds=30))
    assert (progress.done, progress.total, progress.percent) == (10, 120, 8)
    assert progress.eta == timedelta(seconds=330) and progress.eta_seconds == 330 and not progress.finished


def test_progress_of_a_finished_run_is_complete_with_no_estimate(judge):
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    progress = run_progress(run=run)
    assert (progress.done, progress.total, progress.percent) == (120, 120, 100)
    assert progress.eta is None and progress.finished


def test_disagreements_come_a_page_at_a_time_and_say_whether_more_follow(project, criterion):
    judge = judge_create(project=project, criterion=criterion, name="grumpy", kind="assertion", config=ALWAYS_FAIL)
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    assert (run.report["fn"], run.report["fp"]) == (90, 0)
    first = run_disagreements_page(run=run, kind=None, after_trace_id=None, limit=80)
    assert len(first.judgments) == 80 and first.has_more
    rest = run_disagreements_page(run=run, kind="false_fail", after_trace_id=first.judgments[-1].trace_id, limit=80)
    assert len(rest.judgments) == 10 and not rest.has_more
    ids = [j.trace_id for j in first.judgments + rest.judgments]
    assert ids == sorted(ids) and len(set(ids)) == 90
    assert {j.expert_verdict for j in rest.judgments} == {"pass"}


def test_a_kind_the_report_counts_none_of_is_answered_without_a_query(project, criterion, django_assert_num_queries):
    judge = judge_create(project=project, criterion=criterion, name="grumpy", kind="assertion", config=ALWAYS_FAIL)
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    with django_assert_num_queries(0):
        page = run_disagreements_page(run=run, kind="false_pass", after_trace_id=None, limit=20)
    assert (page.judgments, page.has_more) == ([], False)


def test_version_numbers_and_a_pair_for_a_diff(judge):
    judge_version_create(judge=judge, config={**APOLOGY, "value": "apolog"}, comment="wider")
    assert judge_version_numbers(judge=judge) == {1, 2}
    old, new = judge_version_pair(judge=judge, old=2, new=1)
    assert (old.number, new.number) == (2, 1) and old.config["value"] == "apolog" and new.config["value"] == "sorry"
