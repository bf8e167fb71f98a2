"""The suite-run pages: every regression-suite run of a project with its per-criterion verdicts, and one run's
numbers with the cases that failed, candidate output beside the baseline's."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_htmx.http import HttpResponseStopPolling

from annotation.access import get_project_for_user
from annotation.models import Criterion
from suites.models import SuiteCase, SuiteRun, SuiteVerdict

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


@dataclass(frozen=True)
class FailingCase:
    external_id: str
    input: str
    output: str
    baseline_output: str | None
    verdict: str
    baseline_verdict: str
    reasoning: str
    error: str

    @property
    def regressed(self) -> bool:
        return self.verdict == "fail" and self.baseline_verdict == "pass"


@login_required
@require_GET
def suite_run_list(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    runs = SuiteRun.objects.filter(project=access.project).select_related("baseline", "created_by")
    page = Paginator(runs.order_by("-created_at", "-id"), RUNS_PER_PAGE).get_page(request.GET.get("page"))
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
    # By id: a criterion renamed since the run still shows its cases.
    criteria = {c.pk: c for c in Criterion.objects.filter(project=project)}
    sections = []
    for row in summary.get("criteria", []):
        criterion = criteria.get(row.get("criterion_id"))
        failing = _failing(run, criterion) if criterion is not None else ([], 0)
        sections.append(
            {
                "row": row,
                "label": VERDICT_LABELS.get(row["verdict"], row["verdict"]),
                "cases": failing[0],
                "failing_count": failing[1],
            }
        )
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


def _failing(run: SuiteRun, criterion: Criterion) -> tuple[list[FailingCase], int]:
    """The first failing (or errored) cases of a criterion, regressions first, and how many failed in all."""
    verdicts = SuiteVerdict.objects.filter(case__run=run, criterion=criterion, verdict__in=["fail", ""])
    total = verdicts.count()
    rows = list(
        verdicts.select_related("case__trace")
        .only(
            "verdict",
            "baseline_verdict",
            "reasoning",
            "error",
            "case__output",
            "case__trace__external_id",
            "case__trace__input",
            "case__trace__output",
        )
        .order_by("-baseline_verdict", "case_id")[:CASES_PER_CRITERION]
    )
    # -baseline_verdict sorts "pass" before "fail", "error" and "": the regressions come first.
    baseline_outputs: dict[int, str] = {}
    if run.baseline_id is not None:
        baseline_outputs = dict(
            SuiteCase.objects.filter(run_id=run.baseline_id, trace_id__in=[v.case.trace_id for v in rows]).values_list(
                "trace_id", "output"
            )
        )
    cases = [
        FailingCase(
            external_id=v.case.trace.external_id,
            input=v.case.trace.input,
            output=v.case.output,
            baseline_output=baseline_outputs.get(v.case.trace_id) if run.baseline_id else v.case.trace.output,
            verdict=v.verdict or "error",
            baseline_verdict=v.baseline_verdict,
            reasoning=v.reasoning,
            error=v.error,
        )
        for v in rows
    ]
    return cases, total
