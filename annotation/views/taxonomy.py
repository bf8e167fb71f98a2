"""The failure taxonomy page: how often each failure mode occurs, and whether new ones still appear."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone

from annotation.access import get_project_for_user
from annotation.charts import pareto_chart, saturation_chart
from annotation.count_filters import (
    DEFAULT_WINDOW,
    FILTER_PARAMETERS,
    MAX_WINDOW,
    PERIODS,
    FilterError,
    parse_bounded_int,
    parse_count_filters,
)
from annotation.panels import panels_render
from annotation.taxonomy import (
    failure_mode_table,
    mode_co_occurrence_as_of,
    saturation_steps_as_of,
    saturation_summary,
)


@login_required
def failure_mode_list(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project

    # Counts and filters -------------------------------------------------------------------------------------
    # A bad filter shows its error beside the field and no table: counts over other traces than the ones asked
    # for would be read as the answer.
    errors: dict[str, str] = {}
    filters = None
    try:
        filters = parse_count_filters(request.GET, now=timezone.now())
    except FilterError as exc:
        errors.update(exc.errors)
    try:
        window = parse_bounded_int(request.GET.get("window"), name="window", default=DEFAULT_WINDOW, maximum=MAX_WINDOW)
    except FilterError as exc:
        window = DEFAULT_WINDOW
        errors.update(exc.errors)
    # On a large project the page may show the previous numbers, marked, while a worker recounts after a change
    # (taxonomy._cached); `as_of` says when they were counted and the page asks again until they are current.
    as_of = []
    table = failure_mode_table(project=project, filters=filters, stale_ok=True) if filters is not None else None
    pairs = []
    if filters is not None:
        pairs, pairs_as_of = mode_co_occurrence_as_of(project=project, filters=filters, stale_ok=True)
        as_of += [table.as_of, pairs_as_of]
    curve, curve_as_of = saturation_steps_as_of(project=project, stale_ok=True)
    as_of = [stamp for stamp in [*as_of, curve_as_of] if stamp is not None]
    # The trace list filters by source and metadata too, so a count's link keeps them.
    trace_filters = (
        urlencode([(k, v) for k, v in filters.query_items() if k in {"source", "meta"}]) if filters is not None else ""
    )

    summary = saturation_summary(project=project, window=window)
    context = {
        "project": project,
        "access": access,
        "filters": filters,
        "filter_errors": errors,
        # What was typed, so a bad value stays in its field to be corrected.
        "filter_form": {name: request.GET.get(name, "") for name in (*FILTER_PARAMETERS, "window")},
        "periods": [(value, label) for value, (_, label) in PERIODS.items()],
        "max_window": MAX_WINDOW,
        "table": table,
        "counts": table.counts if table is not None else [],
        "trace_filters": trace_filters,
        "pairs": pairs,
        "summary": summary,
        "window": window,
        "reviewed_count": summary.reviewed,
        "modes_seen": summary.distinct_failure_modes,
        "streak": summary.no_new_mode_streak,
        "counted_at": min(as_of) if as_of else None,
    }
    # The two charts (server-side SVG) are drawn from the same numbers as the table and the statement; the curve
    # is cached on large projects like the counts.
    context.update(
        pareto=pareto_chart(context["counts"], trace_list_url=reverse("trace_list", args=[project.slug])),
        saturation=saturation_chart(curve),
    )
    context["panels"] = panels_render(slot="failure_modes", request=request, context=context)
    return render(request, "annotation/failure_modes.html", context, status=400 if errors else 200)
