"""Monitoring's corrected pass rate uses the promoted version's test confusion counts (the promotion's evidence),
never the dev counts it was tuned on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from judges.promotions import judge_version_promote
from judges.services import judge_create, judge_run_create, judge_run_execute
from judges.stats import ConfusionMatrix, corrected_pass_rate_interval
from monitoring.models import MonitorJudgment
from monitoring.selectors import monitoring_summary
from monitoring.series import RESAMPLES, evidence_matrix
from tests.factories import make_criterion, make_split_labels, make_trace
from tests.monitoring.helpers import check_row

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 10, 12, 30, tzinfo=UTC)
NO_SORRY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
PASS, FAIL = ("Done.", "pass"), ("Sorry, no.", "fail")
FALSE_FAIL, FALSE_PASS = ("Sorry to keep you waiting: done.", "pass"), ("We regret that we cannot.", "fail")


@pytest.fixture
def promotion(project):
    """Dev: TPR and TNR 40/44 (the judge reaches 90% there); test: 40/40 and 40/40."""
    cache.clear()  # bucket counts are cached by version and window; versions are new per test, ids may repeat
    criterion = make_criterion(project=project, name="no_apology")
    dev = [PASS] * 40 + [FALSE_FAIL] * 4 + [FAIL] * 40 + [FALSE_PASS] * 4
    make_split_labels(criterion=criterion, split="dev", outputs=dev, prefix="dev")
    make_split_labels(criterion=criterion, split="test", outputs=[PASS, FAIL] * 40, prefix="test")
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=NO_SORRY)
    for split in ("dev", "test"):
        judge_run_execute(run=judge_run_create(version=judge.latest_version(), split=split))
    return judge_version_promote(version=judge.latest_version())


def test_the_corrected_pass_rate_is_computed_from_the_test_runs_counts(project, promotion, expert_client):
    assert (promotion.dev_report["tp"], promotion.dev_report["fn"]) == (40, 4)
    test_counts = ConfusionMatrix(tp=40, fn=0, fp=0, tn=40)
    assert evidence_matrix(promotion.report) == test_counts
    # 30 passes and 10 fails judged in the last day.
    check = check_row(promotion)
    MonitorJudgment.objects.bulk_create(
        MonitorJudgment(
            project=project,
            monitored_check=check,
            trace=make_trace(project=project),
            occurred_at=NOW - timedelta(hours=1),
            verdict="pass" if i < 30 else "fail",
        )
        for i in range(40)
    )
    (summary,) = monitoring_summary(project=project, now=NOW).summaries
    corrected = summary.day.corrected
    expected = corrected_pass_rate_interval(test_counts, judged_passes=30, judged=40, resamples=RESAMPLES)
    assert (corrected.estimate, corrected.low, corrected.high) == (expected.estimate, expected.low, expected.high)
    # A perfect judge on test: the corrected rate is the observed one. Dev's counts would have moved it.
    assert corrected.estimate == 0.75
    dev_counts = ConfusionMatrix(tp=40, fn=4, fp=4, tn=40)
    assert corrected_pass_rate_interval(dev_counts, judged_passes=30, judged=40).estimate != pytest.approx(0.75)

    page = expert_client.get(f"/projects/acme/monitoring/{promotion.criterion_id}/").content.decode()
    assert "On test: TPR 100%, TNR 100% (n = 80)" in page
