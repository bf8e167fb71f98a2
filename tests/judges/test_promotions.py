"""Promotion: only a version whose dev run reaches the project's bar and whose test run meets it on evidence, one
current per criterion, all on record."""

from __future__ import annotations

import re

import pytest

from judges.models import Promotion, PromotionBar
from judges.promotions import (
    PromotionRefused,
    current_promotions,
    eligibility,
    judge_version_promote,
    promotion_withdraw,
)
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_version_create
from tests.factories import make_criterion, make_split_labels

pytestmark = pytest.mark.django_db
EXACT = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
# Catches "Sorry, no." but not "Sorry for this.": TNR 50% on dev and test.
LOOSE = {"check": "contains", "value": "sorry,", "ignore_case": True, "must_contain": False}
TURNS = [("Done.", "pass"), ("Sorry, no.", "fail"), ("Sorry for this.", "fail"), ("Ok.", "pass")]


@pytest.fixture
def criterion(project):
    """Dev: the four outputs 10 times each; test: 18 times each, so EXACT's 36 passes and 36 fails there put both
    95% lower bounds above 90%."""
    criterion = make_criterion(project=project, name="no_apology")
    make_split_labels(criterion=criterion, split="dev", outputs=TURNS * 10, prefix="dev")
    make_split_labels(criterion=criterion, split="test", outputs=TURNS * 18, prefix="test")
    return criterion


def dev_run(version):
    return judge_run_execute(run=judge_run_create(version=version, split="dev"))


def held_out_run(version):
    return judge_run_execute(run=judge_run_create(version=version, split="test"))


def test_a_version_without_a_dev_run_or_under_the_bar_is_refused_with_the_reason(project, criterion, expert):
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=LOOSE)
    loose = judge.latest_version()
    with pytest.raises(PromotionRefused, match="no finished run on the dev split"):
        judge_version_promote(version=loose, user=expert)
    dev_run(loose)
    check = eligibility(loose)
    assert not check.eligible and re.search(r"TNR [456]\d%", check.reason)
    assert "the bar is TPR ≥ 90% and TNR ≥ 90%" in check.reason
    with pytest.raises(PromotionRefused):
        judge_version_promote(version=loose, user=expert)
    assert not Promotion.objects.exists()

    # Under a bar that low (set directly: the setter keeps bars above a coin), loose meets it on test too.
    PromotionBar.objects.create(project=project, min_tpr=0.9, min_tnr=0.3)
    assert eligibility(loose).reason.startswith("apology v1 has no finished run on the test split")
    held_out_run(loose)
    assert judge_version_promote(version=loose, user=expert).min_tnr == 0.3


def test_promoting_a_new_version_ends_the_previous_promotion_and_both_stay_on_record(project, criterion, expert):
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=EXACT)
    first = judge.latest_version()
    dev_run(first)
    held_out_run(first)
    promotion = judge_version_promote(version=first, user=expert, comment="first aligned judge")
    assert promotion.report["tpr"] == 1.0 and promotion.dev_run.split == "dev" and promotion.test_run.split == "test"
    assert judge_version_promote(version=first, user=expert) == promotion  # promoting twice changes nothing

    second = judge_version_create(judge=judge, config={**EXACT, "value": "SORRY"}, comment="same check, new version")
    dev_run(second)
    held_out_run(second)
    judge_version_promote(version=second, user=expert)
    assert current_promotions(project=project)[criterion.pk].version == second
    assert Promotion.objects.filter(criterion=criterion).count() == 2
    promotion.refresh_from_db()
    assert promotion.ended_at is not None and promotion.ended_by == expert

    promotion_withdraw(criterion=criterion, user=expert)
    assert current_promotions(project=project) == {}


def test_external_judges_cannot_be_promoted(project, criterion):
    judge = judge_create(project=project, criterion=criterion, name="vendor", kind="external", config={})
    assert "cannot judge new outputs" in eligibility(judge.latest_version()).reason
