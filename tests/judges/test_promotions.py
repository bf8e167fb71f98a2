"""Promotion: only a version whose dev run meets the project's bar, one current per criterion, all on record."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from judges.models import Promotion, PromotionBar
from judges.promotions import (
    PromotionRefused,
    current_promotions,
    eligibility,
    judge_version_promote,
    promotion_withdraw,
)
from judges.selectors import split_key
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_version_create
from judges.splits import split_of
from tests.factories import make_criterion, make_label, make_trace

pytestmark = pytest.mark.django_db
EXACT = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
# Catches "Sorry, no." but not "Sorry for this.": TNR about 50% on dev.
LOOSE = {"check": "contains", "value": "sorry,", "ignore_case": True, "must_contain": False}


@pytest.fixture
def criterion(project):
    criterion = make_criterion(project=project, name="no_apology")
    # The four outputs take turns within each split, so LOOSE's TNR on dev is 50% whichever traces the split's hash
    # (seeded with the criterion's id, which depends on the tests run before) puts there.
    turns: Counter[str] = Counter()
    for i in range(200):
        split = split_of(split_key(criterion), f"t-{i}")
        kind = turns[split] % 4
        turns[split] += 1
        output = ["Done.", "Sorry, no.", "Sorry for this.", "Ok."][kind]
        trace = make_trace(project=project, external_id=f"t-{i}", output=output)
        make_label(trace=trace, criterion=criterion, verdict="fail" if kind in (1, 2) else "pass")
    return criterion


def dev_run(version):
    return judge_run_execute(run=judge_run_create(version=version, split="dev"))


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

    PromotionBar.objects.create(project=project, min_tpr=0.9, min_tnr=0.4)
    assert judge_version_promote(version=loose, user=expert).min_tnr == 0.4


def test_promoting_a_new_version_ends_the_previous_promotion_and_both_stay_on_record(project, criterion, expert):
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=EXACT)
    first = judge.latest_version()
    dev_run(first)
    promotion = judge_version_promote(version=first, user=expert, comment="first aligned judge")
    assert promotion.report["tpr"] == 1.0 and promotion.dev_run.split == "dev"
    assert judge_version_promote(version=first, user=expert) == promotion  # promoting twice changes nothing

    second = judge_version_create(judge=judge, config={**EXACT, "value": "SORRY"}, comment="same check, new version")
    dev_run(second)
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
