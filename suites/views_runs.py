"""The suite-run pages: every regression-suite run of a project with its per-criterion verdicts, and one run's
numbers with the cases that failed, candidate output beside the baseline's."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from annotation.access import get_project_for_user
from suites.models import SuiteRun
from suites.selectors import suite_run_failures, suite_runs

RUNS_PER_PAGE = 50
# Failing cases shown per criterion: regressions first. A suite aimed at ~70% can have hundreds of failures;
# the count says how many there are, the page shows the ones to read first.
CASES_PER_CRITERION = 25
VERDICT_LABELS = {
    "pass": "pass",
    "regression": "regression",
    "under_threshold": "under threshold",
    "error": "judge errors",
}


@login_required
@require_GET
def suite_run_list(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    page = Paginator(suite_runs(project=access.project), RUNS_PER_PAGE).get_page(request.GET.get("page"))
    rows = [
        {
            "run": run,
            "badges": [
                {"criterion": c["criterion"], "verdict": c["verdict"], "label": VERDICT_LABELS.get(c["verdict"], "?")}
                for c in (run.summary or {}).get("criteria", [])
            ],
        }
        for run in page.object_list
    ]
    context = {"project": access.project, "access": access, "page": page, "rows": rows}
    return render(request, "suites/suite_run_list.html", context)


@login_required
@require_GET
def suite_run_detail(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    run = access.get_object_or_404(SuiteRun.objects.select_related("baseline", "created_by"), pk=run_id)
    summary: dict[str, Any] = run.summary or {}
    sections = [
        {
            "row": failures.row,
            "label": VERDICT_LABELS.get(failures.row["verdict"], failures.row["verdict"]),
            "cases": failures.cases,
            "failing_count": failures.failing_count,
        }
        for failures in suite_run_failures(run=run, limit=CASES_PER_CRITERION)
    ]
    context = {
        "project": project,
        "access": access,
        "run": run,
        "summary": summary,
        "sections": sections,
        "cases_per_criterion": CASES_PER_CRITERION,
        "finished": run.status in {SuiteRun.Status.DONE, SuiteRun.Status.FAILED},
    }
    if request.htmx:
        response = render(request, "suites/suite_run_detail.html#state", context)
        if context["finished"]:
            # 286 tells htmx to swap in this final state and stop polling.
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "suites/suite_run_detail.html", context)
