"""The promotion bar's one writer and one reader, and the reads behind the promotion blocks and the record."""

from __future__ import annotations

import math

import pytest

from annotation.models import Project
from annotation.services import DomainError
from judges.promotions import (
    Bar,
    eligibility,
    judge_promotion_states,
    judge_version_promote,
    promotion_bar,
    promotion_bar_set,
    promotion_history_page,
    promotion_withdraw,
)
from judges.selectors import split_key
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_version_create
from judges.splits import split_of
from tests.factories import make_criterion, make_label, make_split_labels, make_trace

pytestmark = pytest.mark.django_db
EXACT = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
# Catches "Sorry, no." but not "Sorry for this.".
LOOSE = {"check": "contains", "value": "sorry,", "ignore_case": True, "must_contain": False}
# The dev split: four passes and four fails, three of which LOOSE catches.
DEV_OUTPUTS = [("Done.", "pass")] * 4 + [("Sorry, no.", "fail")] * 3 + [("Sorry for this.", "fail")]
# The test split: enough labels for the 95% lower bounds (LOOSE's TNR is 76/80 there, lower bound 87.8%; EXACT is
# perfect), so the bar decides on dev in these tests.
TEST_OUTPUTS = [("Done.", "pass")] * 40 + [("Sorry, no.", "fail")] * 76 + [("Sorry for this.", "fail")] * 4


@pytest.fixture
def criterion(project):
    """Labelled traces in the dev and test splits, chosen by their split so the rates are exact."""
    criterion = make_criterion(project=project, name="no_apology")
    key = split_key(criterion)
    dev_ids = [f"t-{i}" for i in range(200) if split_of(key, f"t-{i}") == "dev"]
    for external_id, (output, verdict) in zip(dev_ids, DEV_OUTPUTS, strict=False):
        make_label(trace=make_trace(project=project, external_id=external_id, output=output), criterion=criterion,
                   verdict=verdict)  # fmt: skip
    make_split_labels(criterion=criterion, split="test", outputs=TEST_OUTPUTS, prefix="test")
    return criterion


@pytest.fixture
def judge(project, criterion):
    """v1 loose (TPR 100%, TNR 75% on dev), v2 exact (100% each); both with a finished dev and test run."""
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=LOOSE)
    exact = judge_version_create(judge=judge, config=EXACT, comment="catch every apology")
    for version in (judge.versions.get(number=1), exact):
        for split in ("dev", "test"):
            judge_run_execute(run=judge_run_create(version=version, split=split))
    return judge


def test_a_new_project_has_the_default_bar_of_ninety_percent_each(project):
    assert promotion_bar(project=project) == Bar(min_tpr=0.9, min_tnr=0.9)


def test_setting_the_bar_stores_it_and_the_reader_returns_it(project, expert):
    bar = promotion_bar_set(project=project, min_tpr=0.95, min_tnr=0.8, user=expert)
    assert bar == Bar(0.95, 0.8)
    assert promotion_bar(project=Project.objects.get(pk=project.pk)) == (0.95, 0.8)


@pytest.mark.parametrize("bad", [0.5, 0.2, 1.0, 1.01, math.nan])
def test_a_bar_no_better_than_a_coin_or_one_no_sample_can_show_is_refused_and_nothing_changes(project, expert, bad):
    with pytest.raises(
        DomainError, match=r"^min_tnr: must be above 0.5 and below 1 \(.*\), got .* for project 'acme'$"
    ):
        promotion_bar_set(project=project, min_tpr=0.9, min_tnr=bad, user=expert)
    assert promotion_bar(project=Project.objects.get(pk=project.pk)) == (0.9, 0.9)


def test_lowering_the_bar_makes_a_version_under_the_old_one_eligible(project, judge, expert):
    loose = judge.versions.get(number=1)
    dev = loose.runs.get(split="dev").report
    assert (dev["tpr"], dev["tnr"]) == (1.0, 0.75)
    assert not eligibility(loose).eligible
    promotion_bar_set(project=project, min_tpr=0.9, min_tnr=0.75, user=expert)
    loose.judge.project.refresh_from_db()
    check = eligibility(loose)
    assert (check.eligible, check.min_tpr, check.min_tnr) == (True, 0.9, 0.75)


def test_judge_promotion_states_mark_the_promoted_version_and_say_why_the_other_is_not_eligible(project, judge, expert):
    judge_version_promote(version=judge.versions.get(number=2), user=expert)
    versions = list(judge.versions.order_by("-number"))
    states = judge_promotion_states(project=project, judge=judge, versions=versions)
    assert states.bar == (0.9, 0.9)
    assert states.criterion_promotion.promotion.version.number == 2
    assert states.criterion_promotion.warning == ""
    v1, v2 = states.version_promotions[1], states.version_promotions[2]
    assert (v2.eligible, v2.is_current) == (True, True)
    assert (v1.eligible, v1.is_current) == (False, False)
    assert "the bar is TPR ≥ 90% and TNR ≥ 90%" in v1.reason


def test_a_promotion_under_a_raised_bar_is_kept_with_a_warning(project, judge, expert):
    promotion_bar_set(project=project, min_tpr=0.9, min_tnr=0.7, user=expert)
    judge_version_promote(version=judge.versions.get(number=1), user=expert)
    promotion_bar_set(project=project, min_tpr=0.9, min_tnr=0.8, user=expert)
    states = judge_promotion_states(project=project, judge=judge, versions=list(judge.versions.all()))
    assert states.criterion_promotion.promotion.version.number == 1
    assert states.criterion_promotion.warning == (
        "Promoted, but it would not be promoted today: On dev, apology v1 has TPR 100% (4/4) and TNR 75% (3/4); "
        "the bar is TPR ≥ 90% and TNR ≥ 80%."
    )
    assert states.bar == (0.9, 0.8)


def test_the_promotion_history_page_is_newest_first_and_says_when_it_is_capped(project, judge, criterion, expert):
    first = judge_version_promote(version=judge.versions.get(number=2), user=expert)
    promotion_withdraw(criterion=criterion, user=expert)
    second = judge_version_promote(version=judge.versions.get(number=2), user=expert)
    history = promotion_history_page(project=project, limit=5)
    assert [p.pk for p in history.promotions] == [second.pk, first.pk] and not history.capped
    capped = promotion_history_page(project=project, limit=1)
    assert [p.pk for p in capped.promotions] == [second.pk] and capped.capped
