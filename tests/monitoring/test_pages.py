"""The monitoring pages: numbers with their intervals, the chart, the sample-size note, rules, alerts and who may
see and change what."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from annotation import ingest
from annotation.models import Role
from judges.models import Promotion, PromotionBar
from monitoring.alerts import rule_evaluate
from monitoring.models import AlertRule
from monitoring.selectors import sampling_rate
from monitoring.series import truncate
from monitoring.services import monitoring_drain, sampling_rate_set
from tests.factories import add_member, make_user
from tests.monitoring.helpers import jsonl, production, promoted_judge, series_of

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _mid_hour():
    """Each test places traffic some hours ago and reads pages that bucket it by the hour of the request: an hour
    turning in between moved the traffic one bucket. The clock runs from half past the current hour, half an hour
    from either edge, whatever the wall clock says."""
    with time_machine.travel(truncate(timezone.now(), "hour") + timedelta(minutes=30), tick=True):
        yield


@pytest.fixture
def monitored(project):
    sampling_rate_set(project=project, rate=1.0)
    return promoted_judge(project)


def recent_traffic(
    project,
    *,
    hours_ago: int,
    n: int,
    fail_every: int,
    prefix: str,
    question: str | None = None,
    fails: int | None = None,
):
    """n production traces that occurred `hours_ago` hours ago, every `fail_every`-th one failing the judge (or
    the first `fails` of them)."""
    moment = truncate(timezone.now(), "hour") - timedelta(hours=hours_ago) + timedelta(minutes=3)
    items = production(n, prefix=prefix, fail_every=fail_every, timestamp=moment.isoformat())
    if fails is not None:
        for index, item in enumerate(items):
            item["output"] = "Sorry, I cannot." if index < fails else "Here you go."
    if question:
        for item in items:
            item["input"] = question
    ingest.import_stream(project=project, stream=jsonl(items))
    monitoring_drain(project=project)


def test_outsiders_get_404_on_every_monitoring_page(outsider_client, project, monitored):
    rule = AlertRule.objects.create(project=project, series=series_of(monitored), threshold=0.9)
    recent_traffic(project, hours_ago=1, n=40, fail_every=2, prefix="a")
    alert = rule_evaluate(rule=rule)
    base = "/projects/acme/monitoring/"
    for url in (base, f"{base}{monitored.criterion_id}/", f"{base}settings/", f"{base}alerts/{alert.pk}/"):
        assert outsider_client.get(url).status_code == 404, url
    assert outsider_client.post(f"{base}rules/{rule.pk}/", {"action": "delete"}).status_code == 404
    assert outsider_client.post(f"{base}{monitored.criterion_id}/rules/", {}).status_code == 404


def test_overview_shows_rates_with_intervals_sample_size_and_unmonitored_criteria(expert_client, project, monitored):
    recent_traffic(project, hours_ago=2, n=100, fail_every=4, prefix="a")  # 75% pass
    page = expert_client.get("/projects/acme/monitoring/").content.decode()
    assert "no_apology" in page and "apology v1" in page
    assert '<strong>75%</strong> <span class="ci">(65%–83%)</span>' in page  # exact (Clopper–Pearson), 75/100
    assert ">100<" in page
    assert "100% of production traces" in page


def test_criterion_page_draws_the_series_with_a_table_and_a_sample_size_note(expert_client, project, monitored):
    recent_traffic(project, hours_ago=1, n=37, fail_every=4, prefix="a")
    recent_traffic(project, hours_ago=3, n=100, fail_every=2, prefix="b")
    response = expert_client.get(f"/projects/acme/monitoring/{monitored.criterion_id}/?bucket=hour&window=24h")
    page = response.content.decode()
    assert response.status_code == 200
    assert "<svg" in page and "chart-band-observed" in page and "chart-line-corrected" in page
    # 27 of 37 passed an hour ago: exact interval 56%–86%, ±15 points; ±5 needs about 310 at a 73% pass rate.
    assert "n = 37 last hour: the interval is ±15 points; about 310 traces give ±5" in page
    assert "n = 0 this hour: no interval yet" in page
    assert '<strong>73%</strong> <span class="ci">(56%–86%)</span>' in page
    assert "<strong>50%</strong>" in page
    assert page.count("<tr") >= 25  # 24 complete hours plus the one in progress, with header
    day = expert_client.get(f"/projects/acme/monitoring/{monitored.criterion_id}/?bucket=day").content.decode()
    assert "<th>Day (UTC)</th>" in day and "(in progress)" in day


def test_an_undefined_corrected_rate_is_said_in_words_never_as_a_number(expert_client, project):
    sampling_rate_set(project=project, rate=1.0)
    PromotionBar.objects.create(project=project, min_tpr=0.0, min_tnr=0.0)
    promotion = promoted_judge(project, config={"check": "length", "max_chars": 1})
    recent_traffic(project, hours_ago=1, n=30, fail_every=2, prefix="a")
    page = expert_client.get(f"/projects/acme/monitoring/{promotion.criterion_id}/").content.decode()
    assert "undefined: the judge is no better than chance" in page
    assert "chart-line-corrected" not in page


def test_a_clipped_or_unreliable_corrected_rate_is_flagged_in_the_table_the_chart_and_the_overview(
    expert_client, project, monitored
):
    """The promotion's labelled counts of a judge near chance (TPR = TNR = 51%) and a bucket where 30 of 100
    passed: Rogan–Gladen gives −950%, clipped to 0, and about 40% of the draws are dropped. The page showed
    "0% (0%–0%)" and nothing else."""
    Promotion.objects.filter(pk=monitored.pk).update(
        report={**monitored.report, "tp": 51, "fn": 49, "fp": 49, "tn": 51, "tpr": 0.51, "tnr": 0.51}
    )
    recent_traffic(project, hours_ago=2, n=100, fail_every=10, prefix="a", fails=70)
    page = expert_client.get(f"/projects/acme/monitoring/{monitored.criterion_id}/?bucket=hour&window=24h")
    body = page.content.decode()
    table = body.split('id="series-table"')[1]
    assert table.count('<span class="monitor-flag">⚠ clipped to 0%: the correction gives -950%') == 1
    assert table.count("of the draws dropped (the judge no better than chance in them)") == 1
    assert "The corrected rate of 1 hour in this window is flagged" in body
    chart = body.split('id="series-chart"')[1].split("</figure>")[0]
    assert chart.count("chart-point-corrected chart-point-flagged") == 1
    overview = expert_client.get("/projects/acme/monitoring/").content.decode()
    assert overview.count("⚠ clipped to 0%") == 2  # the last 24 hours and the last 7 days


def test_an_alert_lists_the_failed_traces_of_its_bucket_escaped_and_shows_a_banner(expert_client, project, monitored):
    rule = AlertRule.objects.create(project=project, series=series_of(monitored), threshold=0.9)
    recent_traffic(project, hours_ago=1, n=30, fail_every=1, prefix="bad", question="<script>alert(1)</script>")
    recent_traffic(project, hours_ago=2, n=30, fail_every=1, prefix="earlier")
    alert = rule_evaluate(rule=rule)
    assert alert is not None
    page = expert_client.get(f"/projects/acme/monitoring/alerts/{alert.pk}/").content.decode()
    assert "bad-0" in page and "bad-29" in page and "earlier-0" not in page
    assert "(30 traces)" in page
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # The banner is on every project page while the alert is open.
    overview = expert_client.get("/projects/acme/").content.decode()
    assert "1 open monitoring alert" in overview and f"/projects/acme/monitoring/alerts/{alert.pk}/" in overview

    # Disabling the rule resolves its alert and the banner goes.
    expert_client.post(f"/projects/acme/monitoring/rules/{rule.pk}/", {"action": "disable"})
    assert "open monitoring alert" not in expert_client.get("/projects/acme/").content.decode()


def test_engineers_add_rules_and_viewers_only_look(client, teammate_client, project, monitored):
    url = f"/projects/acme/monitoring/{monitored.criterion_id}/rules/"
    form = {
        "metric": "corrected",
        "bound": "upper",
        "side": "below",
        "bucket": "day",
        "threshold_percent": "85",
        "min_sample": "30",
        "webhook_url": "https://hooks.example.com/x",
        "enabled": "on",
    }
    assert teammate_client.post(url, form).status_code == 302
    rule = AlertRule.objects.get()
    assert (rule.metric, rule.bucket, rule.threshold, rule.min_sample) == ("corrected", "day", 0.85, 30)
    assert teammate_client.post(url, {**form, "webhook_url": "ftp://x"}).status_code == 302
    assert AlertRule.objects.count() == 1

    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client.force_login(viewer)
    assert client.get(f"/projects/acme/monitoring/{monitored.criterion_id}/").status_code == 200
    assert client.post(url, form).status_code == 403
    assert client.post(f"/projects/acme/monitoring/rules/{rule.pk}/", {"action": "delete"}).status_code == 403
    assert AlertRule.objects.count() == 1


def test_only_the_expert_changes_the_sampling_rate_and_the_form_says_it_applies_to_new_traces(
    expert_client, teammate_client, project
):
    page = teammate_client.get("/projects/acme/monitoring/settings/").content.decode()
    assert "15.00%" in page and "only the project" in page
    assert teammate_client.post("/projects/acme/monitoring/settings/", {"rate_percent": "50"}).status_code == 403
    page = expert_client.get("/projects/acme/monitoring/settings/").content.decode()
    assert "Applies to traces ingested from now on" in page
    assert expert_client.post("/projects/acme/monitoring/settings/", {"rate_percent": "40"}).status_code == 302
    assert sampling_rate(project=project) == 0.4
    assert expert_client.post("/projects/acme/monitoring/settings/", {"rate_percent": "140"}).status_code == 200
    assert sampling_rate(project=project) == 0.4
