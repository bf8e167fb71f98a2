"""Alert webhooks through the outbound guard: SSRF attempts reach nothing (a real loopback listener asserts it
received nothing), the rule form says why a URL is refused, members see only a generic delivery error, and every
delivery is signed so that the receiver's check in docs/security-outbound.md accepts it."""

from __future__ import annotations

import importlib
import json
import logging
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.apps import apps as django_apps

from annotation.models import Role
from annotation.services import DomainError
from core.outbound import NOT_ALLOWED, UNREACHABLE
from monitoring.alerts import webhook_deliver, webhook_signature
from monitoring.models import Alert, AlertRule
from monitoring.services import alert_rule_create, series_for_criterion
from tests.factories import add_member, make_criterion, make_user
from tests.listener import Listener

pytestmark = pytest.mark.django_db
HOUR = datetime(2026, 11, 20, 10, tzinfo=UTC)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "security-outbound.md"


@pytest.fixture(autouse=True)
def _nothing_allowed(settings) -> None:
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = []


@pytest.fixture
def criterion(project):
    return make_criterion(project=project, name="no_apology")


def rule_with(criterion, url: str) -> AlertRule:
    """A rule whose URL is stored as it is (as one saved before the guard, or whose name now points inside)."""
    series = series_for_criterion(criterion=criterion)
    return AlertRule.objects.create(project=criterion.project, series=series, threshold=0.9, webhook_url=url)


def alert_of(rule: AlertRule) -> Alert:
    return Alert.objects.create(
        rule=rule, project=rule.project, series=rule.series, bucket="hour", bucket_start=HOUR,
        bucket_end=HOUR + timedelta(hours=1), judged=50, passes=20, value=0.4, low=0.3, high=0.55, message="m",
    )  # fmt: skip


@pytest.fixture
def internal_name(monkeypatch):
    """`internal.example` resolves to loopback, as a name in someone's DNS could (DNS is what cannot exist here)."""
    real = socket.getaddrinfo

    def resolve(host, port, *args, **kwargs):
        if host == "internal.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)


SSRF_TARGETS = [
    "http://127.0.0.1:{port}/hook",
    "http://localhost:{port}/hook",
    "http://[::1]:{port6}/hook",
    "http://10.0.0.5:{port}/hook",
    "http://169.254.169.254:{port}/latest/meta-data/",
    "http://[::ffff:127.0.0.1]:{port}/hook",
    "http://2130706433:{port}/hook",
    "http://0x7f.1:{port}/hook",
    "http://internal.example:{port}/hook",
]


@pytest.mark.parametrize("template", SSRF_TARGETS)
def test_an_ssrf_delivery_reaches_nothing_and_the_alert_says_only_not_allowed(
    criterion, internal_name, caplog, template
):
    with Listener() as listener, Listener(host="::1") as listener6, caplog.at_level(logging.WARNING):
        url = template.format(port=listener.port, port6=listener6.port)
        alert = webhook_deliver(alert=alert_of(rule_with(criterion, url)))
        assert listener.received_nothing() and listener6.received_nothing()
    alert.refresh_from_db()
    assert (alert.webhook_status, alert.webhook_sent_at, alert.webhook_attempts) == (None, None, 1)
    assert alert.webhook_error == NOT_ALLOWED
    assert "EVALSTUDIO_OUTBOUND_ALLOWLIST" in caplog.text and url in caplog.text  # the detail is in the log


def test_a_redirect_from_an_allowed_receiver_to_loopback_is_not_followed(criterion, settings):
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with Listener(host="127.0.0.2") as inner, Listener(status=307) as outer:
        outer.headers["Location"] = inner.url
        alert = webhook_deliver(alert=alert_of(rule_with(criterion, outer.url)))
        assert len(outer.requests) == 1 and inner.received_nothing()
    assert alert.webhook_status == 307 and alert.webhook_sent_at is None
    assert alert.webhook_error == (
        "delivery failed: the receiver answered with a redirect (HTTP 307), which is not followed"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address"),
        ("http://localhost:{port}/hook", "localhost resolves to a loopback address 127.0.0.1"),
        ("http://[::1]:{port}/hook", "::1 is a loopback address"),
        ("http://10.0.0.5/hook", "10.0.0.5 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[::ffff:127.0.0.1]:{port}/hook", "::ffff:127.0.0.1 is a loopback address inside an IPv6 address"),
        ("http://internal.example:{port}/hook", "internal.example resolves to a loopback address 127.0.0.1"),
    ],
)
def test_the_rule_form_refuses_a_url_whose_host_is_refused_and_says_why(
    criterion, teammate_client, internal_name, url, reason
):
    with Listener() as listener:
        form = {
            "metric": "observed", "bound": "upper", "side": "below", "bucket": "hour", "threshold_percent": "90",
            "min_sample": "20", "webhook_url": url.format(port=listener.port), "enabled": "on",
        }  # fmt: skip
        page = teammate_client.post(f"/projects/acme/monitoring/{criterion.pk}/rules/", form, follow=True)
        assert listener.received_nothing()
    html = page.content.decode()
    assert not AlertRule.objects.exists()
    assert f"webhook_url: The webhook is refused: {reason}; ask the operator to allow it in " in html
    assert "EVALSTUDIO_OUTBOUND_ALLOWLIST." in html


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://2130706433/", "2130706433 is 127.0.0.1, a loopback address"),
        ("http://0177.0.0.1/", "0177.0.0.1 is 127.0.0.1, a loopback address"),
        ("https://169.254.169.254/", "169.254.169.254 is a link-local address"),
    ],
)
def test_the_service_refuses_what_the_form_would(criterion, url, reason):
    # Django's URL field already refuses some of these forms; the service, which the demo and the API call too,
    # refuses them all.
    with pytest.raises(DomainError, match=re.escape(f"webhook_url: the webhook is refused: {reason}; ask the")):
        alert_rule_create(series=series_for_criterion(criterion=criterion), threshold=0.9, webhook_url=url)


def test_an_allowed_loopback_url_and_a_name_that_does_not_resolve_yet_are_saved(criterion, teammate_client, settings):
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.0/8"]
    series = series_for_criterion(criterion=criterion)
    allowed = alert_rule_create(series=series, threshold=0.9, webhook_url="http://127.0.0.1:8123/hook")
    later = alert_rule_create(series=series, threshold=0.9, webhook_url="https://hooks.invalid/x")
    assert allowed.webhook_url and later.webhook_url and allowed.webhook_secret != later.webhook_secret


def test_members_see_a_generic_error_and_the_detail_goes_to_the_log(criterion, client, settings, caplog):
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    with caplog.at_level(logging.WARNING):
        closed = webhook_deliver(alert=alert_of(rule_with(criterion, "http://127.0.0.1:9/closed")))
    with Listener(status=500, body=b"stack trace: secret internals") as listener:
        failing = webhook_deliver(alert=alert_of(rule_with(criterion, listener.url)))
    assert closed.webhook_error == UNREACHABLE and "Connection refused" in caplog.text
    assert (failing.webhook_status, failing.webhook_error) == (500, "delivery failed: HTTP 500")
    viewer = make_user("viewer")
    add_member(criterion.project, viewer, Role.VIEWER)
    client.force_login(viewer)
    shown = client.get(f"/projects/acme/monitoring/alerts/{closed.pk}/").content.decode()
    assert "could not reach the receiver" in shown and "refused" not in shown and ":9" not in shown
    shown = client.get(f"/projects/acme/monitoring/alerts/{failing.pk}/").content.decode()
    assert "delivery failed: HTTP 500" in shown and "secret internals" not in shown
    series_page = client.get(f"/projects/acme/monitoring/{criterion.pk}/").content.decode()
    assert "could not reach the receiver" in series_page and "Connection refused" not in series_page


def docs_verifier():
    """The verification snippet from docs/security-outbound.md, run as a receiver would run it."""
    snippet = re.search(r"```python\n(.*?def verify_evalstudio_webhook.*?)```", DOCS.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(snippet, str(DOCS), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify_evalstudio_webhook"]


def test_an_allowed_receiver_gets_a_signed_delivery_that_the_documented_check_accepts(criterion, settings):
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    verify = docs_verifier()
    with Listener() as listener:
        rule = rule_with(criterion, listener.url)
        alert = webhook_deliver(alert=alert_of(rule))
    assert alert.webhook_status == 200 and alert.webhook_sent_at is not None and alert.webhook_error == ""
    [got] = listener.requests
    assert got.headers["content-type"] == "application/json" and got.headers["x-evalstudio-event"] == "alert.fired"
    assert json.loads(got.body)["alert_id"] == alert.pk
    stamp = int(got.headers["x-evalstudio-timestamp"])
    assert abs(stamp - time.time()) < 60
    assert got.headers["x-evalstudio-signature"] == webhook_signature(
        secret=rule.webhook_secret, timestamp=stamp, body=got.body
    )
    assert verify(rule.webhook_secret, got.headers, got.body)
    # Tampered body, another rule's secret, a replay after 5 minutes: refused.
    assert not verify(rule.webhook_secret, got.headers, got.body.replace(b'"value": 0.4', b'"value": 0.9'))
    assert not verify(rule_with(criterion, listener.url).webhook_secret, got.headers, got.body)
    assert not verify(rule.webhook_secret, got.headers, got.body, now=stamp + 301)
    assert verify(rule.webhook_secret, got.headers, got.body, now=stamp + 299)


def test_the_team_sees_and_rotates_the_secret_and_viewers_never_see_it(criterion, client, expert_client, settings):
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1"]
    rule = rule_with(criterion, "http://127.0.0.1:8123/hook")
    old = rule.webhook_secret
    assert old.startswith("whsec_") and len(old) > 40
    page = f"/projects/acme/monitoring/{criterion.pk}/"
    assert old in expert_client.get(page).content.decode()
    response = expert_client.post(f"/projects/acme/monitoring/rules/{rule.pk}/", {"action": "rotate-secret"})
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.webhook_secret != old and rule.webhook_secret.startswith("whsec_")
    viewer = make_user("viewer")
    add_member(criterion.project, viewer, Role.VIEWER)
    client.force_login(viewer)
    assert rule.webhook_secret not in client.get(page).content.decode()
    assert client.post(f"/projects/acme/monitoring/rules/{rule.pk}/", {"action": "rotate-secret"}).status_code == 403


def test_the_migration_gives_each_existing_rule_its_own_secret_and_makes_old_errors_generic(criterion):
    migration = importlib.import_module("monitoring.migrations.0007_alertrule_webhook_secret")
    rules = [rule_with(criterion, "") for _ in range(3)]
    AlertRule.objects.update(webhook_secret="")
    old = [alert_of(rules[0]), alert_of(rules[1])]
    Alert.objects.filter(pk=old[0].pk).update(webhook_error="HTTP 502 Bad Gateway")
    Alert.objects.filter(pk=old[1].pk).update(webhook_error="URLError: <urlopen error [Errno 111] Connection refused>")
    migration.give_each_rule_its_own_secret(django_apps, None)
    migration.generic_webhook_errors(django_apps, None)
    secrets = set(AlertRule.objects.values_list("webhook_secret", flat=True))
    assert len(secrets) == 3 and all(s.startswith("whsec_") for s in secrets)
    assert [Alert.objects.get(pk=a.pk).webhook_error for a in old] == ["delivery failed: HTTP 502", UNREACHABLE]
