"""The reads behind the monitoring pages, the sampling rate's one writer and reader, and the alert-rule services,
asserted on values. Verdicts are written as rows with chosen times, so every count is exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache

from annotation.models import Project, Trace
from annotation.services import DomainError
from monitoring import selectors
from monitoring.models import Alert, AlertRule, MonitorJudgment
from monitoring.selectors import (
    Backlog,
    alert_rules,
    backlog,
    coverage,
    monitoring_summary,
    sampling_rate,
    series_alerts,
    series_stats,
)
from monitoring.services import alert_rule_create, alert_rule_delete, alert_rule_enable, drain_chunk, sampling_rate_set
from tests.factories import make_criterion, make_trace
from tests.monitoring.helpers import check_row, cursor_of, judge_check, promoted_judge, series_of

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 10, 12, 30, tzinfo=UTC)


@pytest.fixture
def promotion(project):
    cache.clear()  # bucket counts are cached by check and window; checks are new per test, ids may repeat
    return promoted_judge(project)


def verdicts(promotion, *pairs: tuple[timedelta, str]) -> None:
    """One verdict per (time before NOW, verdict) on a trace of its own."""
    project = promotion.criterion.project
    MonitorJudgment.objects.bulk_create(
        MonitorJudgment(
            project=project,
            monitored_check=check_row(promotion),
            trace=make_trace(project=project),
            occurred_at=NOW - ago,
            verdict=verdict,
        )
        for ago, verdict in pairs
    )


def test_the_sampling_rate_has_one_writer_and_one_reader(project, expert):
    assert sampling_rate(project=project) == 0.15
    sampling_rate_set(project=project, rate=0.4, user=expert)
    assert sampling_rate(project=Project.objects.get(pk=project.pk)) == 0.4
    with pytest.raises(DomainError, match="^The sampling rate of acme must be between 0% and 100%, got 150%.$"):
        sampling_rate_set(project=project, rate=1.5, user=expert)
    assert sampling_rate(project=Project.objects.get(pk=project.pk)) == 0.4


def test_the_summary_counts_each_promoted_criterion_over_a_day_and_a_week(project, promotion):
    unmonitored = make_criterion(project=project, name="tone")
    hour, day = timedelta(hours=1), timedelta(days=1)
    verdicts(promotion, *[(hour, "pass")] * 3, (hour, "fail"), (hour, ""), *[(3 * day, "fail")] * 2, (10 * day, "pass"))
    rule = AlertRule.objects.create(project=project, series=series_of(promotion), threshold=0.9)
    alert = Alert.objects.create(rule=rule, project=project, series=rule.series, bucket="hour",
                                 bucket_start=NOW - hour, bucket_end=NOW, judged=4, passes=3, value=0.75, low=0.3,
                                 high=0.95, message="under")  # fmt: skip
    summary = monitoring_summary(project=project, now=NOW)
    (only,) = summary.summaries
    assert (only.check, only.series) == (judge_check(promotion), series_of(promotion))
    assert (only.day.passes, only.day.fails, only.day.errors) == (3, 1, 1)
    assert (only.week.passes, only.week.fails, only.week.errors) == (3, 3, 1)
    assert only.day.observed == 0.75 and only.open_alerts == [alert]
    assert only.backlog is None  # the check never drained
    assert only.coverage.text == "a 15% sample of production traces"
    assert [(s.provider, s.subject_id, s.name) for s in summary.unmonitored] == [("judge", unmonitored.pk, "tone")]


def test_the_series_has_a_bucket_per_hour_newest_first_with_the_current_one_incomplete(project, promotion):
    hour = timedelta(hours=1)
    verdicts(promotion, (timedelta(minutes=10), "pass"), (hour, "fail"), (hour, "pass"), (3 * hour, "pass"))
    found = series_stats(
        project=project,
        check=judge_check(promotion),
        series=series_of(promotion),
        covered=coverage(series=None, check=judge_check(promotion), rate=0.15),
        bucket="hour",
        window=6 * hour,
        now=NOW,
    )
    assert len(found.stats) == 6 and found.stats[-1].start == datetime(2026, 11, 10, 12, tzinfo=UTC)
    assert [(r.stats.passes, r.stats.fails, r.complete) for r in found.rows] == [
        (1, 0, False),
        (1, 1, True),
        (0, 0, True),
        (1, 0, True),
        (0, 0, True),
        (0, 0, True),
    ]
    assert len(found.notes) == 2 and "this hour" in found.notes[0] and "last hour" in found.notes[1]


def test_a_rule_is_created_from_a_fraction_and_bad_values_are_refused(project, promotion, expert):
    series = series_of(promotion)
    rule = alert_rule_create(series=series, threshold=0.85, metric="corrected", bucket="day", user=expert)
    assert (rule.project, rule.threshold, rule.metric, rule.bucket, rule.created_by) == (
        project,
        0.85,
        "corrected",
        "day",
        expert,
    )
    for kwargs, message in [
        ({"threshold": 1.2}, "threshold: a pass rate from 0% to 100%, got 120%"),
        ({"threshold": 0.9, "side": "sideways"}, "side: expected one of below, above, got 'sideways'"),
        ({"threshold": 0.9, "webhook_url": "ftp://x"}, "webhook_url: the webhook must be an http:// or https:// URL"),
    ]:
        with pytest.raises(DomainError) as refused:
            alert_rule_create(series=series, user=expert, **kwargs)
        assert str(refused.value) == message
    assert alert_rules(series=series) == [rule]


def test_disabling_or_deleting_a_rule_resolves_its_open_alert(project, promotion):
    series = series_of(promotion)
    rules = [alert_rule_create(series=series, threshold=0.9) for _ in range(2)]
    for rule in rules:
        AlertRule.objects.filter(pk=rule.pk).update(state=AlertRule.State.FIRING)
        Alert.objects.create(rule=rule, project=project, series=series, bucket="hour", bucket_start=NOW,
                             bucket_end=NOW, judged=1, passes=0, value=0, low=0, high=0.8, message="m")  # fmt: skip
    disabled = alert_rule_enable(rule=AlertRule.objects.get(pk=rules[0].pk), enabled=False)
    assert (disabled.enabled, disabled.state) == (False, "ok")
    assert Alert.objects.get(rule=disabled).resolved_at is not None
    assert alert_rule_enable(rule=disabled, enabled=True).enabled
    alert_rule_delete(rule=rules[1])
    assert alert_rules(series=series) == [disabled]
    assert [a.rule_id for a in series_alerts(series=series, limit=5)] == [disabled.pk]


def test_the_backlog_is_the_production_traces_past_the_cursor_times_the_rate(promotion, monkeypatch):
    project = promotion.criterion.project
    sampling_rate_set(project=project, rate=0.5)
    for i in range(40):
        make_trace(project=project, external_id=f"w-{i}", source="production" if i % 4 else "staging")
    check = judge_check(promotion)
    drain_chunk(project=project, check=check, chunk_size=5)  # the cursor stops after the fifth sampled trace
    cursor = cursor_of(promotion.version)
    row = check_row(promotion).pk
    past = Trace.objects.filter(project=project, source="production", id__gt=cursor.last_trace_id).count()
    assert 0 < past < 30
    assert backlog(project=project, check_id=row, check=check, rate=0.5) == Backlog(about=round(past * 0.5), more=False)
    monkeypatch.setattr(selectors, "BACKLOG_SCAN_CAP", 4)
    assert backlog(project=project, check_id=row, check=check, rate=0.5) == Backlog(about=2, more=True)
