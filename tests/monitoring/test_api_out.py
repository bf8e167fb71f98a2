"""Monitoring's numbers out of the HTML pages: the series route of the API (the pages' own numbers, as JSON) and
`GET /metrics` in the Prometheus exposition format (who may scrape, and what a scrape says). Verdicts are rows with
chosen times and the clock is frozen, so every count is exact."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.cache import cache
from prometheus_client.parser import text_string_to_metric_families

from annotation.api import api
from annotation.services import api_token_create
from judges.stats import metrics
from monitoring.checks import check_matrix
from monitoring.metrics import celery_queue_depth
from monitoring.models import Alert, AlertRule, MonitorJudgment
from monitoring.selectors import coverage, series_stats
from monitoring.services import sampling_rate_set
from tests.factories import make_project, make_trace, make_user
from tests.monitoring.helpers import check_row, judge_check, promoted_judge, series_of

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 11, 10, 12, 30, tzinfo=UTC)
SERIES = "/api/v1/projects/acme/monitoring/series"
OPERATOR_TOKEN = "operator-token-for-tests-0123456789"


@pytest.fixture
def promotion(project):
    cache.clear()  # bucket counts and counters live in the cache; ids repeat across tests
    return promoted_judge(project)


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="grafana")[1]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def verdicts(promotion, *pairs: tuple[timedelta, str]) -> None:
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


# --- GET /api/v1/projects/{slug}/monitoring/series ---------------------------------------------------------------


def test_the_series_route_gives_the_pages_numbers_per_bucket_with_the_judge_and_the_sampling_rate(
    client, project, expert, promotion, token
):
    sampling_rate_set(project=project, rate=0.25, user=expert)
    minutes = timedelta(minutes=10)
    verdicts(promotion, *[(minutes, "pass")] * 7, *[(minutes, "fail")] * 2, (minutes, ""))
    verdicts(promotion, *[(timedelta(hours=3), "pass")] * 4, (timedelta(hours=3), "fail"))
    with time_machine.travel(NOW, tick=False):
        response = client.get(
            SERIES, {"criterion": "no_apology", "bucket": "hour", "window": "24h"}, headers=auth(token)
        )
        check = judge_check(promotion)
        expected = series_stats(project=project, check=check, series=series_of(promotion),
                                covered=coverage(series=series_of(promotion), check=check, rate=0.25),
                                bucket="hour", window=timedelta(hours=24), now=NOW)  # fmt: skip
    assert response.status_code == 200, response.content
    body = response.json()
    rates = metrics(check_matrix(check))
    assert body["judge"]["version_id"] == promotion.version_id
    assert (body["judge"]["tpr"], body["judge"]["tnr"]) == (rates["tpr"], rates["tnr"])
    assert (body["sampling_rate"], body["judged_share"], body["bucket"], body["window"]) == (0.25, 0.25, "hour", "24h")
    buckets = body["buckets"]
    assert len(buckets) == 24 and buckets[-1]["start"] == "2026-11-10T12:00:00+00:00"
    assert [b["complete"] for b in buckets[-2:]] == [True, False]
    current = buckets[-1]
    assert (current["judged"], current["passed"], current["errors"]) == (9, 7, 1)
    assert current["observed"] == pytest.approx(7 / 9)
    last = expected.stats[-1]
    assert current["observed_ci"] == [last.observed_low, last.observed_high]
    assert current["corrected"] == last.corrected.estimate
    assert current["corrected_ci"] == [last.corrected.low, last.corrected.high]
    three_hours_ago = buckets[-4]
    assert (three_hours_ago["start"], three_hours_ago["judged"], three_hours_ago["passed"]) == (
        "2026-11-10T09:00:00+00:00", 5, 4)  # fmt: skip
    empty = buckets[0]
    assert (empty["judged"], empty["observed"], empty["observed_ci"], empty["corrected"]) == (0, None, None, None)
    assert empty["corrected_missing"] == "no judged traces"


def test_daily_buckets_over_thirty_days(client, promotion, token):
    verdicts(promotion, (timedelta(days=2), "pass"), (timedelta(days=2), "fail"))
    with time_machine.travel(NOW, tick=False):
        response = client.get(
            SERIES, {"criterion": "no_apology", "bucket": "day", "window": "30d"}, headers=auth(token)
        )
    buckets = response.json()["buckets"]
    assert len(buckets) == 30 and buckets[-1]["start"] == "2026-11-10T00:00:00+00:00"
    assert (buckets[-3]["start"], buckets[-3]["judged"], buckets[-3]["observed"]) == (
        "2026-11-08T00:00:00+00:00",
        2,
        0.5,
    )


@pytest.mark.parametrize(
    ("query", "detail"),
    [
        ({}, "Query parameter 'criterion' is required"),
        (
            {"criterion": "no_apology", "bucket": "week"},
            "Query parameter 'bucket' must be one of hour, day; got 'week'",
        ),
        ({"criterion": "no_apology", "window": "1y"}, "Query parameter 'window' must be one of 24h, 7d, 30d; got '1y'"),
        ({"criterion": "no_apology", "bucket": "day", "window": "24h"}, "Query parameters 'bucket' and 'window'"),
        ({"criterion": "no_apology", "from": "x"}, "Unknown query parameter 'from'"),
    ],
)
def test_a_bad_parameter_is_400_naming_it(client, promotion, token, query, detail):
    response = client.get(SERIES, query, headers=auth(token))
    assert response.status_code == 400
    assert response.json()["detail"].startswith(detail), response.json()


def test_an_unknown_or_unmonitored_criterion_is_404_saying_which(client, project, promotion, token):
    from tests.factories import make_criterion

    make_criterion(project=project, name="tone")
    unknown = client.get(SERIES, {"criterion": "nope"}, headers=auth(token))
    assert (unknown.status_code, unknown.json()) == (404, {"detail": "No criterion named 'nope' in project 'acme'"})
    tone = client.get(SERIES, {"criterion": "tone"}, headers=auth(token))
    assert (tone.status_code, tone.json()) == (
        404,
        {"detail": "Criterion 'tone' has no promoted judge: nothing monitors it"},
    )


def test_the_series_route_is_in_the_openapi_document(client):
    schema = api.get_openapi_schema()
    operation = schema["paths"]["/api/v1/projects/{slug}/monitoring/series"]["get"]
    assert operation["tags"] == ["monitoring"]
    assert {200, 400, 404} <= set(operation["responses"])
    assert operation["responses"][200]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SeriesOut"
    }


def test_a_member_session_reads_the_series_and_an_outsider_gets_404(teammate_client, outsider_client, promotion):
    assert teammate_client.get(SERIES, {"criterion": "no_apology"}).status_code == 200
    assert outsider_client.get(SERIES, {"criterion": "no_apology"}).status_code == 404


# --- GET /metrics -----------------------------------------------------------------------------------------------


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def labels(window: str | None = None, **extra: str) -> tuple:
    found = {"project": "acme", "provider": "judge", "subject": "no_apology", **extra}
    if window:
        found["window"] = window
    return tuple(sorted(found.items()))


@pytest.fixture
def operator(settings):
    settings.EVALSTUDIO_METRICS_TOKEN = OPERATOR_TOKEN


def test_a_scrape_has_each_checks_rates_counts_backlog_and_alerts(client, project, promotion, operator):
    minutes, hours = timedelta(minutes=10), timedelta(hours=5)
    verdicts(promotion, *[(minutes, "pass")] * 3, (minutes, "fail"), (minutes, ""), *[(hours, "fail")] * 4)
    rule = AlertRule.objects.create(project=project, series=series_of(promotion), threshold=0.9)
    Alert.objects.create(rule=rule, project=project, series=rule.series, bucket="hour", bucket_start=NOW - hours,
                         bucket_end=NOW, judged=4, passes=3, value=0.75, low=0.3, high=0.95,
                         message="under")  # fmt: skip
    with time_machine.travel(NOW, tick=False):
        found = scrape(client, Authorization=f"Bearer {OPERATOR_TOKEN}")
    check = {"check": str(promotion.version)}
    assert found["evalstudio_judged_traces", labels("1h", **check)] == 4
    assert found["evalstudio_judged_traces", labels("24h", **check)] == 8
    assert found["evalstudio_errored_judgments", labels("1h", **check)] == 1
    assert found["evalstudio_pass_rate_observed", labels("1h", **check)] == 0.75
    assert found["evalstudio_pass_rate_observed", labels("24h", **check)] == 3 / 8
    low = found["evalstudio_pass_rate_observed_low", labels("1h", **check)]
    high = found["evalstudio_pass_rate_observed_high", labels("1h", **check)]
    assert 0 < low < 0.75 < high < 1
    corrected = found["evalstudio_pass_rate_corrected", labels("1h", **check)]
    assert found["evalstudio_pass_rate_corrected_low", labels("1h", **check)] <= corrected
    assert corrected <= found["evalstudio_pass_rate_corrected_high", labels("1h", **check)]
    assert found["evalstudio_open_alerts", labels(**check)] == 1
    assert found["evalstudio_sampled_backlog", labels(**check)] == 0  # never drained: nothing to estimate
    assert found["evalstudio_sampling_rate", (("project", "acme"),)] == 0.15


def test_ingestion_counts_accepted_and_rejected_traces_for_the_scrape(client, project, promotion, token, operator):
    body = {"traces": [{"id": "a", "input": "hi"}, {"id": "b", "output": "yo"}, {"id": "c"}]}
    response = client.post("/api/v1/projects/acme/traces", body, content_type="application/json", headers=auth(token))
    assert response.status_code == 207
    client.post("/api/v1/projects/acme/traces", {"traces": [{"id": "d", "input": "x"}]},
                content_type="application/json", headers=auth(token))  # fmt: skip
    found = scrape(client, Authorization=f"Bearer {OPERATOR_TOKEN}")
    assert found["evalstudio_traces_accepted_total", (("project", "acme"),)] == 3
    assert found["evalstudio_traces_rejected_total", (("project", "acme"),)] == 1
    assert found["evalstudio_spans_accepted_total", (("project", "acme"),)] == 0


def test_a_project_token_scrapes_its_own_project_only(client, project, promotion, token):
    other = make_project(slug="other", expert=make_user("other-expert"))
    promoted_judge(other)
    found = scrape(client, Authorization=f"Bearer {token}")
    assert {dict(key)["project"] for _, key in found if "project" in dict(key)} == {"acme"}
    assert ("evalstudio_judged_traces", labels("1h", check=str(promotion.version))) in found


def test_the_operator_token_scrapes_every_project(client, project, promotion, operator):
    make_project(slug="other", expert=make_user("other-expert"))
    found = scrape(client, Authorization=f"Bearer {OPERATOR_TOKEN}")
    assert ("evalstudio_sampling_rate", (("project", "other"),)) in found
    assert ("evalstudio_sampling_rate", (("project", "acme"),)) in found


def test_without_credentials_or_with_a_bad_token_a_scrape_is_401(client, project, operator):
    bare = client.get("/metrics")
    assert (bare.status_code, bare["WWW-Authenticate"]) == (401, 'Bearer realm="metrics"')
    assert b"EVALSTUDIO_METRICS_ALLOW" in bare.content
    wrong = client.get("/metrics", headers=auth("not-the-token"))
    assert (wrong.status_code, wrong["WWW-Authenticate"]) == (401, 'Bearer realm="metrics", error="invalid_token"')


def test_an_allow_listed_address_scrapes_without_a_token(client, project, settings):
    from core.client_ip import parse_networks

    settings.EVALSTUDIO_METRICS_NETWORKS = parse_networks(["10.1.0.0/16"])
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.2.0.1").status_code == 401
    # Behind one trusted proxy the scraper's address is the one the proxy wrote, not the proxy's own.
    settings.EVALSTUDIO_TRUSTED_PROXY_COUNT = 1
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.9", HTTP_X_FORWARDED_FOR="10.1.9.9").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.5").status_code == 401


def test_a_bad_allow_list_fails_at_start_up_naming_the_entry():
    from core.client_ip import parse_networks

    with pytest.raises(ValueError, match="^'10.0.0.300/8' is not an IP address or CIDR network"):
        parse_networks(["10.0.0.0/8", "10.0.0.300/8"])


def test_the_celery_queue_depth_is_the_redis_list_length(settings):
    import os

    import redis

    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.skip("needs REDIS_URL (a real Redis)")
    settings.CELERY_BROKER_URL = url
    settings.CELERY_TASK_DEFAULT_QUEUE = "metrics-test-queue"
    client = redis.Redis.from_url(url)
    client.delete("metrics-test-queue")
    try:
        client.rpush("metrics-test-queue", "a", "b", "c")
        assert celery_queue_depth() == ("metrics-test-queue", 3)
    finally:
        client.delete("metrics-test-queue")
    settings.CELERY_BROKER_URL = "filesystem://"
    assert celery_queue_depth() is None
