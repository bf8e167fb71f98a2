"""Alert rules: fire once per crossing (one alert, one webhook POST), stay quiet while firing, resolve, fire again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from annotation import ingest
from judges.models import Promotion, PromotionBar
from monitoring.alerts import alert_rules_evaluate, rule_evaluate
from monitoring.models import Alert, AlertRule
from monitoring.services import monitoring_drain, sampling_rate_set
from tests.monitoring.helpers import jsonl, production, promoted_judge, series_of
from tests.monitoring.webhook_server import WebhookServer

pytestmark = pytest.mark.django_db
HOUR = datetime(2026, 11, 20, 10, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _loopback_receivers_allowed(settings) -> None:
    """The receivers here listen on loopback, which the outbound guard refuses unless the operator allows it."""
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1"]


def traffic(project, hour: datetime, *, n: int, fail_every: int, prefix: str) -> None:
    """n production traces that occurred in `hour`, every `fail_every`-th one apologising (the judge fails it)."""
    ingest.import_stream(
        project=project,
        stream=jsonl(
            production(n, prefix=prefix, fail_every=fail_every, timestamp=(hour + timedelta(minutes=7)).isoformat())
        ),
    )
    monitoring_drain(project=project)


@pytest.fixture
def monitored(project):
    sampling_rate_set(project=project, rate=1.0)
    return promoted_judge(project)


def rule_for(promotion, **fields) -> AlertRule:
    defaults = {"metric": "observed", "bound": "upper", "side": "below", "threshold": 0.9, "bucket": "hour"}
    return AlertRule.objects.create(
        project=promotion.criterion.project, series=series_of(promotion), **{**defaults, **fields}
    )


def test_a_rule_fires_once_per_crossing_not_on_every_evaluation(project, monitored):
    with WebhookServer() as hook:
        rule = rule_for(monitored, webhook_url=hook.url)
        traffic(project, HOUR, n=100, fail_every=2, prefix="bad")  # observed 50%, upper bound about 60% < 90%
        after = HOUR + timedelta(hours=1, minutes=5)

        alert = rule_evaluate(rule=rule, now=after)
        assert alert is not None and alert.judged == 100 and alert.passes == 50
        assert alert.low < 0.5 < alert.high < 0.9 and abs(alert.value - 0.5) < 1e-9
        assert hook.events() == ["alert.fired"]
        payload = hook.received[0]["json"]
        assert hook.received[0]["content_type"] == "application/json"
        assert payload["criterion"] == "no_apology" and payload["judged"] == 100 and payload["interval"][1] < 0.9
        assert payload["url"] == f"/projects/acme/monitoring/alerts/{alert.pk}/"
        alert.refresh_from_db()
        assert alert.webhook_status == 200 and alert.webhook_sent_at is not None

        # Beat keeps evaluating: still past the threshold, but no new alert and no second POST.
        for minutes in (10, 15, 20):
            assert rule_evaluate(rule=rule, now=HOUR + timedelta(hours=1, minutes=minutes)) is None
        assert Alert.objects.count() == 1 and hook.events() == ["alert.fired"]
        rule.refresh_from_db()
        assert rule.state == "firing"

        # The next hour is healthy: resolved (and the webhook told).
        traffic(project, HOUR + timedelta(hours=1), n=100, fail_every=1000, prefix="good")
        assert rule_evaluate(rule=rule, now=HOUR + timedelta(hours=2, minutes=5)) is None
        alert.refresh_from_db()
        rule.refresh_from_db()
        assert alert.resolved_at is not None and rule.state == "ok"
        assert hook.events() == ["alert.fired", "alert.resolved"]
        assert rule_evaluate(rule=rule, now=HOUR + timedelta(hours=2, minutes=10)) is None
        assert hook.events() == ["alert.fired", "alert.resolved"]

        # A new crossing fires again.
        traffic(project, HOUR + timedelta(hours=2), n=100, fail_every=3, prefix="worse")
        second = rule_evaluate(rule=rule, now=HOUR + timedelta(hours=3, minutes=5))
        assert second is not None and second.pk != alert.pk
        assert hook.events() == ["alert.fired", "alert.resolved", "alert.fired"]
        assert Alert.objects.filter(resolved_at=None).get() == second


def test_a_webhook_that_fails_is_recorded_and_retried_without_a_second_alert(project, monitored):
    with WebhookServer() as hook:
        hook.status = 500
        rule = rule_for(monitored, webhook_url=hook.url)
        traffic(project, HOUR, n=60, fail_every=2, prefix="bad")
        fired = alert_rules_evaluate(now=HOUR + timedelta(hours=1, minutes=5))
        assert len(fired) == 1
        alert = Alert.objects.get()
        assert (alert.webhook_status, alert.webhook_attempts, alert.webhook_sent_at) == (500, 1, None)
        assert "HTTP 500" in alert.webhook_error

        hook.status = 204
        assert alert_rules_evaluate(now=HOUR + timedelta(hours=1, minutes=10)) == []
        alert.refresh_from_db()
        assert alert.webhook_attempts == 2 and alert.webhook_sent_at is not None and alert.webhook_error == ""
        assert hook.events() == ["alert.fired", "alert.fired"] and Alert.objects.count() == 1
        assert rule.alerts.count() == 1


def test_an_unreachable_webhook_never_stops_the_evaluation(project, monitored):
    rule_for(monitored, webhook_url="http://127.0.0.1:9/nothing-listens")
    other = rule_for(monitored, threshold=0.95)
    traffic(project, HOUR, n=60, fail_every=2, prefix="bad")
    fired = alert_rules_evaluate(now=HOUR + timedelta(hours=1, minutes=5))
    assert len(fired) == 2
    broken = Alert.objects.exclude(rule=other).get()
    assert broken.webhook_status is None and broken.webhook_error == "could not reach the receiver"


def test_too_few_judged_traces_or_no_crossing_decide_nothing(project, monitored):
    rule = rule_for(monitored, min_sample=50)
    traffic(project, HOUR, n=20, fail_every=1, prefix="few")  # every one fails, but only 20
    assert rule_evaluate(rule=rule, now=HOUR + timedelta(hours=1, minutes=5)) is None
    traffic(project, HOUR + timedelta(hours=1), n=100, fail_every=20, prefix="ok")  # 95%, upper bound > 90%
    assert rule_evaluate(rule=rule, now=HOUR + timedelta(hours=2, minutes=5)) is None
    assert not Alert.objects.exists()
    # "Lower bound below 90%" is the early warning: it fires on the same numbers.
    early = rule_for(monitored, bound="lower")
    assert rule_evaluate(rule=early, now=HOUR + timedelta(hours=2, minutes=5)) is not None


def test_a_corrected_rate_rule_uses_the_corrected_interval(project, monitored):
    rule = rule_for(monitored, metric="corrected", threshold=0.8)
    traffic(project, HOUR, n=100, fail_every=2, prefix="bad")
    alert = rule_evaluate(rule=rule, now=HOUR + timedelta(hours=1, minutes=5))
    # The judge is perfect on dev, so the corrected rate is the observed one, with a wider interval.
    assert alert is not None and abs(alert.value - 0.5) < 1e-9 and alert.high < 0.8
    assert "Corrected pass rate 50%" in alert.message


def test_a_judge_no_better_than_chance_gives_no_corrected_decision(project):
    sampling_rate_set(project=project, rate=1.0)
    PromotionBar.objects.create(project=project, min_tpr=0.0, min_tnr=0.0)
    promotion = promoted_judge(project, config={"check": "length", "max_chars": 1})  # fails everything
    assert promotion.report["tpr"] == 0.0
    rule = rule_for(promotion, metric="corrected")
    traffic(project, HOUR, n=100, fail_every=2, prefix="bad")
    assert rule_evaluate(rule=rule, now=HOUR + timedelta(hours=1, minutes=5)) is None
    assert not Alert.objects.exists()


def with_labelled_counts(promotion, **cells) -> None:
    """The promotion's evidence as if its labelled run had these confusion counts."""
    tp, fn, fp, tn = (cells[key] for key in ("tp", "fn", "fp", "tn"))
    report = {**promotion.report, **cells, "tpr": tp / (tp + fn), "tnr": tn / (tn + fp)}
    Promotion.objects.filter(pk=promotion.pk).update(report=report)


def test_a_corrected_rate_whose_draws_were_mostly_dropped_decides_nothing(project, monitored):
    """A judge near chance (TPR = TNR = 51%): about 40% of the draws are dropped, the rest spread over 0–100%. The
    early-warning rule "lower bound below 90%" fired on that interval without a word."""
    with_labelled_counts(monitored, tp=51, fn=49, fp=49, tn=51)
    rule = rule_for(monitored, metric="corrected", bound="lower")
    traffic(project, HOUR, n=100, fail_every=2, prefix="bad")
    assert rule_evaluate(rule=rule, now=HOUR + timedelta(hours=1, minutes=5)) is None
    rule.refresh_from_db()
    assert rule.state == AlertRule.State.OK and rule.last_bucket_start == HOUR and not Alert.objects.exists()
    # The observed rate is not affected: a rule on it still decides.
    assert rule_evaluate(rule=rule_for(monitored, bound="lower"), now=HOUR + timedelta(hours=1, minutes=5))


def test_a_clipped_corrected_rate_fires_and_its_alert_says_it_was_clipped(project, monitored):
    """A good judge (TNR 90%, so 10% false passes) that passed none of 100 traces: the correction gives −12%,
    shown as 0%. The rule fires (the rate is low), and the message says the estimate was clipped."""
    with_labelled_counts(monitored, tp=270, fn=10, fp=12, tn=108)
    with WebhookServer() as hook:
        rule = rule_for(monitored, metric="corrected", threshold=0.5, webhook_url=hook.url)
        traffic(project, HOUR, n=100, fail_every=1, prefix="bad")
        alert = rule_evaluate(rule=rule, now=HOUR + timedelta(hours=1, minutes=5))
        assert alert is not None and alert.value == 0.0 and alert.high < 0.5
        assert alert.message.startswith("no_apology: Corrected pass rate 0% (95% CI 0%–")
        assert alert.message.endswith(
            "its upper bound is below 50%. Note: clipped to 0%: the correction gives -12% (the judge passed fewer "
            "traces than its false-pass rate alone would give)"
        )
        assert hook.received[0]["json"]["message"] == alert.message
