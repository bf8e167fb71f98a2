"""`GET /metrics`: monitoring's numbers in the Prometheus exposition format, for Grafana and Prometheus alerting.

A custom collector (prometheus_client's `Collector`) computes every family per scrape from the database with bounded
queries: per project and current check (a criterion's promoted judge, an agent's grader) the observed and corrected
pass rates over the last hour and day with their 95% bounds, judged and errored counts, the sampled backlog and open
alerts; ingestion counters (core.counters, shared through Redis); the Celery queue's depth (LLEN, Redis brokers only).
No process keeps counts of its own, so any gunicorn worker answers a scrape with the same numbers.

Who may scrape (decided in `metrics_caller`): a bearer token equal to EVALSTUDIO_METRICS_TOKEN (every project), a
project's API token (that project only), or a client address in EVALSTUDIO_METRICS_ALLOW (every project).
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from annotation.access import token_problem
from annotation.models import ApiToken, Project
from core.client_ip import client_ip, ip_in
from core.counters import COUNTERS, counter_values
from monitoring.checks import check_rows, current_checks
from monitoring.models import Alert, MonitorJudgment
from monitoring.selectors import backlog, coverage, sampling_rate, stats_for
from monitoring.series import BucketStats

logger = logging.getLogger(__name__)

WINDOWS = (("1h", timedelta(hours=1)), ("24h", timedelta(hours=24)))
CHECK_LABELS = ["project", "provider", "subject", "check"]


class MonitoringCollector(Collector):
    """Every metric family for `projects`, computed when collected (once per scrape)."""

    def __init__(self, projects: list[Project], *, now: datetime | None = None) -> None:
        self.projects = projects
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now = self.now or timezone.now()
        rate_labels = [*CHECK_LABELS, "window"]
        families = {
            "observed": GaugeMetricFamily(
                "evalstudio_pass_rate_observed", "The check's pass rate on judged production traces", labels=rate_labels
            ),
            "observed_low": GaugeMetricFamily(
                "evalstudio_pass_rate_observed_low", "Lower 95% bound of the observed pass rate", labels=rate_labels
            ),
            "observed_high": GaugeMetricFamily(
                "evalstudio_pass_rate_observed_high", "Upper 95% bound of the observed pass rate", labels=rate_labels
            ),
            "corrected": GaugeMetricFamily(
                "evalstudio_pass_rate_corrected",
                "The pass rate corrected for the judge's errors (TPR/TNR on its promotion's evidence); absent when "
                "it cannot be computed",
                labels=rate_labels,
            ),
            "corrected_low": GaugeMetricFamily(
                "evalstudio_pass_rate_corrected_low", "Lower 95% bound of the corrected pass rate", labels=rate_labels
            ),
            "corrected_high": GaugeMetricFamily(
                "evalstudio_pass_rate_corrected_high", "Upper 95% bound of the corrected pass rate", labels=rate_labels
            ),
            "judged": GaugeMetricFamily(
                "evalstudio_judged_traces", "Production traces judged pass or fail in the window", labels=rate_labels
            ),
            "errors": GaugeMetricFamily(
                "evalstudio_errored_judgments", "Judgments that failed (no verdict) in the window", labels=rate_labels
            ),
        }
        backlog_family = GaugeMetricFamily(
            "evalstudio_sampled_backlog",
            "About how many sampled production traces the check has not judged yet (estimate; capped count)",
            labels=CHECK_LABELS,
        )
        alerts_family = GaugeMetricFamily(
            "evalstudio_open_alerts", "Open alerts of the check's series", labels=CHECK_LABELS
        )
        sampling_family = GaugeMetricFamily(
            "evalstudio_sampling_rate", "The share of new production traces monitoring judges", labels=["project"]
        )
        for project in self.projects:
            checks = current_checks(project=project)
            rate = sampling_rate(project=project)
            sampling_family.add_metric([project.slug], rate)
            if not checks:
                continue
            rows = check_rows(project=project, checks=checks)
            open_by_series = dict(
                Alert.objects.filter(project=project, resolved_at=None)
                .values_list("series_id")
                .annotate(n=Count("id"))
                .order_by()
            )
            for check in checks:
                row = rows.get((check.provider, check.key))
                labels = [project.slug, check.provider, check.subject.name, check.label]
                counts = _windows_counts(row.pk if row else None, now)
                for window, length in WINDOWS:
                    stats = stats_for(check=check, start=now - length, end=now, counts=counts[window])
                    _add_rates(families, [*labels, window], stats)
                share = coverage(series=row.series if row else None, check=check, rate=rate).judged_share
                waiting = backlog(project=project, check_id=row.pk if row else None, check=check, rate=share)
                backlog_family.add_metric(labels, waiting.about if waiting else 0)
                alerts_family.add_metric(labels, open_by_series.get(row.series_id, 0) if row else 0)
        yield from families.values()
        yield backlog_family
        yield alerts_family
        yield sampling_family
        yield from _counters(self.projects)
        depth = celery_queue_depth()
        if depth is not None:
            queue = GaugeMetricFamily(
                "evalstudio_celery_queue_depth", "Tasks waiting in the Celery queue (Redis LLEN)", labels=["queue"]
            )
            queue.add_metric([depth[0]], depth[1])
            yield queue


def _windows_counts(check_id: int | None, now: datetime) -> dict[str, tuple[int, int, int]]:
    """window → (passes, fails, errors) of the check's verdicts, every window in one aggregate over the longest
    (an index range of monitor_judgment_series, as monitoring.selectors.window_counts reads one window)."""
    if check_id is None:
        return {window: (0, 0, 0) for window, _ in WINDOWS}
    longest = max(length for _, length in WINDOWS)
    counts = {}
    for window, length in WINDOWS:
        since = Q(occurred_at__gte=now - length)
        counts[f"{window}:pass"] = Count("id", filter=since & Q(verdict="pass"))
        counts[f"{window}:fail"] = Count("id", filter=since & Q(verdict="fail"))
        counts[f"{window}:error"] = Count("id", filter=since & Q(verdict=""))
    row = MonitorJudgment.objects.filter(
        monitored_check_id=check_id, occurred_at__gte=now - longest, occurred_at__lt=now
    ).aggregate(**counts)
    return {w: (row[f"{w}:pass"], row[f"{w}:fail"], row[f"{w}:error"]) for w, _ in WINDOWS}


def _add_rates(families: dict[str, GaugeMetricFamily], labels: list[str], stats: BucketStats) -> None:
    families["judged"].add_metric(labels, stats.judged)
    families["errors"].add_metric(labels, stats.errors)
    # A rate that cannot be computed is absent (never a made-up number): Grafana shows a gap.
    if stats.observed is not None:
        families["observed"].add_metric(labels, stats.observed)
        families["observed_low"].add_metric(labels, stats.observed_low)
        families["observed_high"].add_metric(labels, stats.observed_high)
    if stats.corrected is not None:
        families["corrected"].add_metric(labels, stats.corrected.estimate)
        families["corrected_low"].add_metric(labels, stats.corrected.low)
        families["corrected_high"].add_metric(labels, stats.corrected.high)


def _counters(projects: list[Project]) -> Iterator[Metric]:
    slugs = {p.pk: p.slug for p in projects}
    for name, help_text in COUNTERS.items():
        family = CounterMetricFamily(f"evalstudio_{name}", help_text, labels=["project"])
        for project_id, value in counter_values(name, slugs).items():
            family.add_metric([slugs[project_id]], value)
        yield family


def celery_queue_depth() -> tuple[str, int] | None:
    """(queue name, tasks waiting) from the broker when it is Redis; None when it is not or cannot be reached."""
    url = getattr(settings, "CELERY_BROKER_URL", "") or ""
    if not url.startswith(("redis://", "rediss://")):
        return None
    import redis

    queue = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.25, socket_timeout=0.5)
        try:
            return queue, int(client.llen(queue))
        finally:
            client.close()
    except (redis.RedisError, OSError) as exc:
        logger.warning("/metrics: the Celery queue's depth cannot be read: %s", exc)
        return None


def metrics_caller(request: HttpRequest) -> list[Project] | HttpResponse:
    """The projects the caller may scrape, or the 401/403 answer."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    token = raw.strip() if scheme.lower() == "bearer" else ""
    operator = settings.EVALSTUDIO_METRICS_TOKEN
    if token:
        if operator and hmac.compare_digest(token.encode(), operator.encode()):
            return list(Project.objects.order_by("slug"))
        api_token = ApiToken.objects.select_related("project").filter(token_hash=ApiToken.hash(token)).first()
        problem = token_problem(api_token)
        if problem is not None:
            return _unauthorized(problem, token_sent=True)
        return [api_token.project]
    if settings.EVALSTUDIO_METRICS_NETWORKS and ip_in(client_ip(request), settings.EVALSTUDIO_METRICS_NETWORKS):
        return list(Project.objects.order_by("slug"))
    return _unauthorized(
        "Send 'Authorization: Bearer <token>' (EVALSTUDIO_METRICS_TOKEN or a project's API token), or scrape from "
        "an address in EVALSTUDIO_METRICS_ALLOW",
        token_sent=False,
    )


def _unauthorized(detail: str, *, token_sent: bool) -> HttpResponse:
    response = HttpResponse(detail + "\n", status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"' + (', error="invalid_token"' if token_sent else "")
    return response


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    projects = metrics_caller(request)
    if isinstance(projects, HttpResponse):
        return projects
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitoringCollector(projects))
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
