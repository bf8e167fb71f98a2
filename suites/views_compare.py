"""Two regression-suite runs side by side: per criterion, each run's pass rate with its exact interval, McNemar's
paired test on the cases both ran (same golden trace, same criterion), the pass-rate difference with a paired
bootstrap interval, a verdict, and the cases that flipped (pass→fail first).

`/projects/{slug}/suites/compare/?a=<suite run id>&b=<suite run id>`: B is the candidate, A the baseline. Counting is
two GROUP BYs over the runs' verdicts, so the page costs the same whatever the golden set's size; flips are a
bounded list.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.access import ProjectAccess, get_project_for_user
from suites.models import SuiteRun
from suites.pairwise import llm_versions, pairwise_comparisons
from suites.selectors import suite_run_comparison, suite_run_of

FLIPS_SHOWN = 100
# Pairs whose orders disagreed shown per pairwise comparison; the counts cover them all.
DISAGREED_SHOWN = 50


class CompareError(Exception):
    """A bad request; the message names the parameter."""


def _run(access: ProjectAccess, request: HttpRequest, name: str) -> SuiteRun:
    raw = request.GET.get(name, "").strip()
    if not raw:
        raise CompareError(f"{name}: name two suite runs, like ?a=12&b=15 (A the baseline, B the candidate)")
    if not raw.isdigit():
        raise CompareError(f"{name}: expected a suite run number, got {raw!r}")
    run = suite_run_of(project=access.project, run_id=int(raw))
    if run is None:
        raise CompareError(f"{name}: suite run {raw} is not a suite run of this project")
    return run


@login_required
@require_GET
def suite_compare(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    context: dict[str, Any] = {"project": access.project, "access": access}
    try:
        run_a, run_b = _run(access, request, "a"), _run(access, request, "b")
        if run_a.pk == run_b.pk:
            raise CompareError(f"a, b: both name suite run {run_a.pk}; pick two different runs")
    except CompareError as exc:
        context["error"] = str(exc)
        return render(request, "suites/compare.html", context, status=400)
    compared = suite_run_comparison(project=access.project, run_a=run_a, run_b=run_b, flips_shown=FLIPS_SHOWN)
    context.update(
        run_a=run_a,
        run_b=run_b,
        name_a=compared.name_a,
        name_b=compared.name_b,
        rows=compared.rows,
        flips=compared.flips,
        flips_capped=compared.flips_capped,
        flips_shown=FLIPS_SHOWN,
        total_flips=compared.total_flips,
        regressions=compared.regressions,
        # Pairwise comparisons of these runs with an LLM judge (suites.pairwise), and the versions to start one with.
        pairwise=pairwise_comparisons(baseline=run_a, candidate=run_b, shown=DISAGREED_SHOWN),
        pairwise_versions=llm_versions(project=access.project),
        disagreed_shown=DISAGREED_SHOWN,
    )
    return render(request, "suites/compare.html", context)
