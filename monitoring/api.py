"""REST routes for monitoring, added to the project's API (`/api/v1/…`): a criterion's monitored time series, the
same numbers the monitoring pages show (monitoring.selectors.series_stats), for Grafana and notebooks."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Query, Router, Schema

from annotation.access import API_AUTH, Permission, ProjectAccess, api_access
from annotation.api import Error
from annotation.models import Criterion
from core.api_errors import detail_response
from core.read_query import QueryError, query_refused, refuse_unknown
from judges.stats import metrics
from monitoring.checks import JUDGE, check_matrix, current_check, series_find
from monitoring.selectors import coverage, sampling_rate, series_stats
from monitoring.series import BucketStats

router = Router(tags=["monitoring"])

BUCKETS = ("hour", "day")
WINDOWS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}


class BucketOut(Schema):
    start: str
    judged: int
    passed: int
    errors: int
    observed: float | None
    observed_ci: list[float] | None
    corrected: float | None
    corrected_ci: list[float] | None
    # Why `corrected` is null (empty when it is not); the flags say why a corrected rate needs care.
    corrected_missing: str
    corrected_flags: list[str]
    complete: bool


class JudgeOut(Schema):
    version_id: int
    label: str
    kind: str
    promoted_at: str
    evidence: str
    tpr: float | None
    tnr: float | None


class SeriesOut(Schema):
    project: str
    criterion: str
    bucket: str
    window: str
    judge: JudgeOut
    # The project's production sampling rate, and the share of new production traffic this judge judges (1 when
    # its series judges all traffic).
    sampling_rate: float
    judged_share: float
    buckets: list[BucketOut]


def _bad(detail: str) -> HttpResponse:
    return detail_response(400, detail)


def _bucket(stats: BucketStats, now: Any) -> dict[str, Any]:
    corrected = stats.corrected
    return {
        "start": stats.start.isoformat(),
        "judged": stats.judged,
        "passed": stats.passes,
        "errors": stats.errors,
        "observed": stats.observed,
        "observed_ci": None if stats.observed_low is None else [stats.observed_low, stats.observed_high],
        "corrected": None if corrected is None else corrected.estimate,
        "corrected_ci": None if corrected is None else [corrected.low, corrected.high],
        "corrected_missing": stats.corrected_missing,
        "corrected_flags": list(stats.corrected_flags),
        "complete": stats.end <= now,
    }


@router.get(
    "/projects/{slug}/monitoring/series",
    auth=API_AUTH,
    response={200: SeriesOut, 400: Error, 404: Error},
    summary="A criterion's monitored pass rates per hour or day",
    description=(
        "Query: `criterion` (a criterion's name, required), `bucket` = hour|day (default hour), `window` = "
        "24h|7d|30d (default 24h). One bucket per hour/day in the window, oldest first, the bucket in progress last "
        "(`complete` false); empty buckets included. `observed` is the promoted judge's pass rate with its exact 95% "
        "interval; `corrected` the pass rate corrected for the judge's errors (TPR/TNR on its promotion's evidence) "
        "with its 95% interval; null with `corrected_missing` saying why. 400 names a bad parameter; 404 for an "
        "unknown criterion or one no promoted judge monitors."
    ),
)
def monitoring_series_get(
    request: HttpRequest,
    slug: str,
    # Strings, checked below: a bad value is a 400 naming the parameter, as everywhere in the API (not a 422).
    criterion: str = Query("", description="The criterion's name (required)"),
    bucket: str = Query("hour", description="hour | day"),
    window: str = Query("24h", description="24h | 7d | 30d (a day bucket needs 7d or 30d)"),
) -> dict[str, Any] | HttpResponse:
    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    project = access.project
    try:
        refuse_unknown(request.GET, ("criterion", "bucket", "window"))
    except QueryError as exc:
        return query_refused(exc)
    name = criterion.strip()
    if not name:
        return _bad("Query parameter 'criterion' is required: the name of a criterion of the project")
    if bucket not in BUCKETS:
        return _bad(f"Query parameter 'bucket' must be one of hour, day; got {bucket[:40]!r}")
    if window not in WINDOWS:
        return _bad(f"Query parameter 'window' must be one of 24h, 7d, 30d; got {window[:40]!r}")
    if bucket == "day" and window == "24h":
        return _bad("Query parameters 'bucket' and 'window': a 24h window has no whole day; use bucket=hour or 7d/30d")
    found_criterion = Criterion.objects.filter(project=project, name=name).first()
    if found_criterion is None:
        return detail_response(404, f"No criterion named {name[:100]!r} in project {project.slug!r}")
    criterion_id = found_criterion.pk
    check = current_check(project=project, provider_name=JUDGE, subject_id=criterion_id)
    if check is None:
        return detail_response(404, f"Criterion {name[:100]!r} has no promoted judge: nothing monitors it")
    series = series_find(project=project, provider_name=JUDGE, subject_id=criterion_id)
    covered = coverage(series=series, check=check, rate=sampling_rate(project=project))
    now = timezone.now()
    found = series_stats(
        project=project, check=check, series=series, covered=covered, bucket=bucket, window=WINDOWS[window], now=now
    )
    matrix = check_matrix(check)
    rates = metrics(matrix) if matrix is not None else {"tpr": None, "tnr": None}
    return {
        "project": project.slug,
        "criterion": found_criterion.name,
        "bucket": bucket,
        "window": window,
        "judge": {
            "version_id": check.key,
            "label": check.label,
            "kind": check.kind,
            "promoted_at": check.since.isoformat(),
            "evidence": check.evidence_source,
            "tpr": rates["tpr"],
            "tnr": rates["tnr"],
        },
        "sampling_rate": covered.rate,
        "judged_share": covered.judged_share,
        "buckets": [_bucket(s, now) for s in found.stats],
    }
