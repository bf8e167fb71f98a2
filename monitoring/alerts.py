"""Alert rules: evaluated by Celery beat on the latest complete bucket, firing once per crossing.

A rule is OK or FIRING. OK and the bound past the threshold: an Alert opens, the rule fires, the webhook gets one
POST. FIRING and still past: nothing (no second POST, however often beat evaluates). FIRING and back: the alert is
resolved (and the webhook told). Too few judged traces, no current check on the rule's series (no promoted judge,
no grader promoted into monitoring), or an undefined corrected rate: no decision, the state stays. So is a corrected
rate whose interval is not reliable (more of its draws dropped, the judge no better than chance in them, than one
tail of the interval holds): its bounds would say more than the labelled counts do. A corrected rate whose estimate
was clipped to 0 or 1 does decide (a judge passing fewer traces than its false-pass rate alone would give is a real
sign that the rate is low), and its alert's message says it was clipped. Each rule is evaluated under its row lock,
so two evaluations at once open one alert.
Webhook failures are recorded on the alert and retried by later evaluations a few times; they never stop one.
Every delivery goes through the outbound guard (core/outbound.py), which checks the URL's host again at send time,
and is signed with the rule's secret: `X-EvalStudio-Signature: v1=<hex HMAC-SHA256 of "{timestamp}.{body}">` with
the unix time in `X-EvalStudio-Timestamp` (docs/security-outbound.md shows a receiver checking it). The alert keeps
only the member-facing outcome ("delivery failed: HTTP 500", "could not reach the receiver"); the detail is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core import outbound
from judges.monitored import Check
from monitoring.checks import current_check
from monitoring.models import Alert, AlertRule, MonitoredCheck
from monitoring.selectors import stats_for, window_counts
from monitoring.series import BUCKET_LENGTH, BucketStats, truncate

logger = logging.getLogger(__name__)
WEBHOOK_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class Reading:
    """A rule's metric on one bucket: value and interval, or None with the reason there is no decision."""

    stats: BucketStats
    value: float | None
    low: float | None
    high: float | None
    reason: str = ""
    # What the alert's message must say about the value (a clipped corrected estimate).
    flags: tuple[str, ...] = ()


def latest_complete_bucket(bucket: str, now: datetime) -> tuple[datetime, datetime]:
    end = truncate(now, bucket)
    return end - BUCKET_LENGTH[bucket], end


def rule_reading(*, rule: AlertRule, check: Check, check_id: int | None, start: datetime, end: datetime) -> Reading:
    """The rule's metric on [start, end) from the verdicts of the series' current check (stored as `check_id`)."""
    counts = window_counts(check_id=check_id, start=start, end=end)
    stats = stats_for(check=check, start=start, end=end, counts=counts)
    if stats.judged < max(1, rule.min_sample):
        return Reading(
            stats, None, None, None, f"{stats.judged} judged traces, fewer than the rule's {rule.min_sample}"
        )
    if rule.metric == AlertRule.Metric.OBSERVED:
        return Reading(stats, stats.observed, stats.observed_low, stats.observed_high)
    if stats.corrected is None:
        return Reading(stats, None, None, None, stats.corrected_missing)
    corrected = stats.corrected
    if corrected.unreliable:
        return Reading(stats, None, None, None, "; ".join(corrected.flags))
    return Reading(stats, corrected.estimate, corrected.low, corrected.high, flags=corrected.flags)


def _message(rule: AlertRule, reading: Reading) -> str:
    metric = "Observed" if rule.metric == AlertRule.Metric.OBSERVED else "Corrected"
    return (
        f"{rule.series.name}: {metric} pass rate {reading.value:.0%} (95% CI {reading.low:.0%}–{reading.high:.0%}, "
        f"n = {reading.stats.judged}) in the {rule.bucket} from {reading.stats.start:%Y-%m-%d %H:%M} UTC: "
        f"its {rule.bound} bound is {rule.side} {rule.threshold:.0%}"
        + "".join(f". Note: {flag}" for flag in reading.flags)
    )


def rule_evaluate(*, rule: AlertRule, now: datetime | None = None) -> Alert | None:
    """Evaluate one rule on its latest complete bucket; returns the alert when this evaluation fired it."""
    now = now or timezone.now()
    start, end = latest_complete_bucket(rule.bucket, now)
    fired: Alert | None = None
    resolved: Alert | None = None
    with transaction.atomic():
        rule = AlertRule.objects.select_for_update().select_related("series", "project").get(pk=rule.pk)
        if not rule.enabled:
            return None
        rule.last_evaluated_at, rule.last_bucket_start = now, start
        series = rule.series
        check = current_check(project=rule.project, provider_name=series.provider, subject_id=series.subject_id)
        row = MonitoredCheck.objects.filter(series=series, key=check.key).first() if check else None
        reading = (
            rule_reading(rule=rule, check=check, check_id=row.pk if row else None, start=start, end=end)
            if check
            else None
        )
        current = rule.alerts.filter(resolved_at=None).first()
        if reading is not None and reading.value is not None:
            crossing = rule.crosses(reading.low, reading.high)
            if crossing and current is None:
                fired = Alert.objects.create(
                    rule=rule,
                    project=rule.project,
                    series=series,
                    monitored_check=row,
                    bucket=rule.bucket,
                    bucket_start=start,
                    bucket_end=end,
                    judged=reading.stats.judged,
                    passes=reading.stats.passes,
                    value=reading.value,
                    low=reading.low,
                    high=reading.high,
                    message=_message(rule, reading),
                    opened_at=now,
                )
                rule.state = AlertRule.State.FIRING
            elif not crossing and current is not None:
                current.resolved_at = now
                current.save(update_fields=["resolved_at"])
                resolved = current
                rule.state = AlertRule.State.OK
        rule.save(update_fields=["state", "last_evaluated_at", "last_bucket_start"])
    if fired is not None and rule.webhook_url:
        webhook_deliver(alert=fired)
    if resolved is not None and rule.webhook_url:
        _post(rule, _payload(resolved, "alert.resolved"))
    return fired


def alert_rules_evaluate(*, now: datetime | None = None) -> list[Alert]:
    """Evaluate every enabled rule (one failing rule never stops the others), then retry undelivered webhooks."""
    fired = []
    for rule in AlertRule.objects.filter(enabled=True).order_by("id"):
        try:
            alert = rule_evaluate(rule=rule, now=now)
        except Exception:
            logger.exception("Evaluating alert rule %s failed", rule.pk)
            continue
        if alert is not None:
            fired.append(alert)
    retry = (
        Alert.objects.filter(
            resolved_at=None, webhook_sent_at=None, webhook_attempts__gt=0, webhook_attempts__lt=WEBHOOK_MAX_ATTEMPTS
        )
        .exclude(rule__webhook_url="")
        .exclude(pk__in=[alert.pk for alert in fired])
    )  # just tried
    for alert in retry.select_related("rule", "series", "project"):
        webhook_deliver(alert=alert)
    return fired


def _payload(alert: Alert, event: str) -> dict:
    rule = alert.rule
    return {
        "event": event,
        "alert_id": alert.pk,
        "project": alert.project.slug,
        # The series' name: a criterion's, or e.g. an agent's task completion; criterion_id is null for the latter.
        "criterion": alert.series.name,
        "criterion_id": alert.series.criterion_id,
        "series": {"provider": alert.series.provider, "subject_id": alert.series.subject_id, "name": alert.series.name},
        "rule": {
            "id": rule.pk,
            "metric": rule.metric,
            "bound": rule.bound,
            "side": rule.side,
            "threshold": rule.threshold,
            "bucket": rule.bucket,
        },
        "bucket_start": alert.bucket_start.isoformat(),
        "bucket_end": alert.bucket_end.isoformat(),
        "judged": alert.judged,
        "judge_passes": alert.passes,
        "value": alert.value,
        "interval": [alert.low, alert.high],
        "message": alert.message,
        "opened_at": alert.opened_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
        "url": alert.get_absolute_url(),
    }


def webhook_signature(*, secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: v1= and the hex HMAC-SHA256, keyed by the rule's secret, of
    "{timestamp}.{body}". The timestamp is inside what is signed, so a captured delivery cannot be replayed later
    under a fresh timestamp."""
    digest = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"v1={digest}"


def _post(rule: AlertRule, payload: dict) -> outbound.OutboundResult:
    """POST the JSON payload to the rule's webhook, signed, through the outbound guard. Never raises."""
    body = json.dumps(payload).encode()
    timestamp = int(time.time())
    result = outbound.request(
        "POST",
        rule.webhook_url,
        body=body,
        headers={
            "Content-Type": "application/json",
            "X-EvalStudio-Event": payload["event"],
            "X-EvalStudio-Timestamp": str(timestamp),
            "X-EvalStudio-Signature": webhook_signature(secret=rule.webhook_secret, timestamp=timestamp, body=body),
        },
        timeout=settings.EVALSTUDIO_MONITOR_WEBHOOK_TIMEOUT_SECONDS,
        max_bytes=settings.EVALSTUDIO_OUTBOUND_MAX_RESPONSE_BYTES,
    )
    if not result.ok:
        logger.warning("Alert rule %s: %s webhook not delivered: %s", rule.pk, payload["event"], result.detail)
    return result


def webhook_deliver(*, alert: Alert) -> Alert:
    """POST the alert to its rule's webhook and record the outcome on the alert (what members may see of it)."""
    result = _post(alert.rule, _payload(alert, "alert.fired"))
    alert.webhook_attempts += 1
    alert.webhook_status = result.status
    alert.webhook_error = "" if result.ok else result.error
    alert.webhook_sent_at = timezone.now() if result.ok else None
    alert.save(update_fields=["webhook_attempts", "webhook_status", "webhook_error", "webhook_sent_at"])
    return alert
