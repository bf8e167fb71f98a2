"""The loop's rules without a database: when a cycle is due, the maturity ladder, a criterion's judge status."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from judges.loop_rules import (
    ALIGNED,
    BELOW,
    GUARDRAIL,
    NONE,
    PROMOTED,
    TOP_STEP,
    CadenceSettingError,
    check_setting,
    is_aligned,
    judge_status,
    maturity,
    next_due,
    share,
)

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


def test_a_cycle_never_run_is_due_now():
    due = next_due(last_at=None, every_days=21, now=NOW)
    assert (due.is_due, due.due_at) == (True, None)


def test_a_cycle_is_due_exactly_its_length_after_the_last_one():
    last = NOW - timedelta(days=21)
    assert next_due(last_at=last, every_days=21, now=NOW).is_due is True
    not_yet = next_due(last_at=last + timedelta(seconds=1), every_days=21, now=NOW)
    assert not_yet.is_due is False
    assert not_yet.due_at == NOW + timedelta(seconds=1)


def test_the_level_is_the_top_of_an_unbroken_ladder_with_the_next_step():
    assert maturity({}).level == 0
    assert maturity({1: "reviewed"}).level == 1
    assert "regression suite" in maturity({1: "reviewed"}).next_step
    # Production sampling without a regression suite is still level 1, and the next step is the suite.
    gap = maturity({1: "reviewed", 3: "sampling", 4: "continuous"})
    assert (gap.level, gap.name) == (1, "manual review")
    assert gap.evidence == {1: "reviewed", 2: "", 3: "sampling", 4: "continuous"}
    assert maturity({1: "a", 2: "b"}).next_step.startswith("Promote an aligned judge")
    assert maturity({1: "a", 2: "b", 3: "c"}).next_step.startswith("Keep monitoring judging")
    top = maturity({1: "a", 2: "b", 3: "c", 4: "d"})
    assert (top.level, top.name, top.next_step) == (4, "continuous evaluation of production traffic", TOP_STEP)


@pytest.mark.parametrize(
    ("flags", "status"),
    [
        ((False, False, False, False), NONE),
        ((True, False, False, False), BELOW),
        ((True, True, False, False), ALIGNED),
        ((True, True, True, False), PROMOTED),
        ((True, False, True, True), GUARDRAIL),
    ],
)
def test_a_criterion_takes_the_strongest_status_of_its_judges(flags, status):
    has_judge, aligned, promoted, guardrail = flags
    assert (
        judge_status(has_judge=has_judge, aligned_on_dev=aligned, promoted=promoted, guardrail_ready=guardrail)
        == status
    )


def test_only_aligned_or_better_counts_as_aligned():
    assert [is_aligned(s) for s in (NONE, BELOW, ALIGNED, PROMOTED, GUARDRAIL)] == [False, False, True, True, True]


def test_a_share_of_nothing_is_none_not_zero():
    assert share(0, 0) is None
    assert share(3, 4) == 0.75


@pytest.mark.parametrize("value", [0, 366, "3", 2.5, True, None])
def test_a_cycle_length_out_of_range_is_refused_naming_it(value):
    with pytest.raises(CadenceSettingError) as refused:
        check_setting("cycle_days", value)
    assert str(refused.value).startswith("cycle_days: expected a whole number from 1 to 365, got ")
