"""The bias battery in the browser: started from a version on the judge page, followed on its own page while the
worker runs it, and shown per version (each bias's flip rate, interval, n, flipped traces, against the bias bar)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.access import Permission, get_project_for_user
from annotation.models import Project
from annotation.services import DomainError
from core.runs import WAITS_FOR_WORKER, run_waits_for_worker
from judges import kinds
from judges.bias import bias_run_cancel, bias_run_enqueue, latest_bias_runs, latest_finished_bias_runs_by_judge
from judges.models import BiasRun, Judge, JudgeVersion
from judges.promotions import bias_bar
from judges.providers.bias import BIAS_LABELS, BIASES, bias_problem, bias_problems, percent

# Flipped traces listed per bias on the judge page; the battery's own page lists every one the report kept.
FLIPS_ON_JUDGE_PAGE = 10


@dataclass(frozen=True)
class BiasRow:
    """One bias of a finished battery as a page shows it."""

    key: str
    label: str
    n: int
    flipped: int
    rate: float | None
    low: float | None
    high: float | None
    errors: int
    skipped: str
    over: bool  # over the bias bar, or measured on no trace
    variants: list[dict[str, Any]] = field(default_factory=list)
    flips: list[dict[str, str]] = field(default_factory=list)
    more_flips: int = 0  # flips not listed: beyond the page's limit, or beyond what the report kept

    @property
    def rate_text(self) -> str:
        return "—" if self.rate is None else percent(self.rate)

    @property
    def interval_text(self) -> str:
        return "" if self.low is None or self.high is None else f"{percent(self.low)}–{percent(self.high)}"


def bias_rows(report: dict[str, Any] | None, *, max_flip_rate: float, flips_limit: int | None = None) -> list[BiasRow]:
    """A battery's report as rows, in the battery's order, listing at most `flips_limit` flipped traces per bias
    (pure: the report in, rows out)."""
    biases = (report or {}).get("biases") or {}
    rows = []
    for key in BIASES:
        result = biases.get(key) or {}
        ci = result.get("ci") or (None, None)
        flips = result.get("flips") or []
        listed = flips if flips_limit is None else flips[:flips_limit]
        rows.append(
            BiasRow(
                key=key,
                label=BIAS_LABELS[key],
                n=result.get("n") or 0,
                flipped=result.get("flipped") or 0,
                rate=result.get("flip_rate"),
                low=ci[0],
                high=ci[1],
                errors=result.get("errors") or 0,
                skipped=result.get("skipped") or "",
                over=bool(bias_problem(key, result or None, max_flip_rate=max_flip_rate)),
                variants=result.get("variants") or [],
                flips=listed,
                # A trace may flip under several variants: each flip is listed, the rate counts the trace once.
                more_flips=len(flips) - len(listed),
            )
        )
    return rows


def annotate_versions(*, project: Project, judge: Judge, versions: list[JudgeVersion]) -> dict[str, Any]:
    """For the judge page: each version shown gets `bias_run` (its latest battery, any status) and `bias_rows`;
    the context says whether the judge's kind has a battery, and the bias bar."""
    if not kinds.get(judge.kind).bias_battery:
        return {"has_bias_battery": False}
    max_flip_rate = bias_bar(project=project)
    latest = latest_bias_runs(version_ids=[v.pk for v in versions])
    for version in versions:
        run = latest.get(version.pk)
        version.bias_run = run
        version.bias_rows = (
            bias_rows(run.report, max_flip_rate=max_flip_rate, flips_limit=FLIPS_ON_JUDGE_PAGE)
            if run and run.report
            else []
        )
    return {
        "has_bias_battery": True,
        "max_flip_rate": max_flip_rate,
        "max_flip_rate_text": percent(max_flip_rate),
    }


def annotate_judge_list(*, project: Project, sections: list[Any], max_flip_rate: float) -> None:
    """For the judges page: each LLM judge's summary gets `bias_run` (its latest finished battery, any version)
    and `bias_rows` against the bias bar; one query for the project."""
    latest = latest_finished_bias_runs_by_judge(project_id=project.pk)
    for section in sections:
        for summary in section.judges:
            run = latest.get(summary.judge.pk)
            summary.bias_run = run
            summary.bias_rows = bias_rows(run.report, max_flip_rate=max_flip_rate, flips_limit=0) if run else []


@login_required
@require_POST
def bias_run_create_view(request: HttpRequest, slug: str, judge_id: int, number: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.RUN_JUDGES)
    judge = access.get_object_or_404(Judge.objects.select_related("criterion"), pk=judge_id)
    version = get_object_or_404(JudgeVersion.objects.defer("artifact"), judge=judge, number=number)
    try:
        run = bias_run_enqueue(version=version, user=request.user)
    except DomainError as exc:
        messages.error(request, f"{judge.name} v{number}: {exc}")
        return redirect("judge_detail", slug, judge.pk)
    if run_waits_for_worker(run):
        messages.warning(request, WAITS_FOR_WORKER)
    return redirect("bias_run_detail", slug, run.pk)


@login_required
@require_POST
def bias_run_cancel_view(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.RUN_JUDGES)
    run = access.get_object_or_404(BiasRun, via="version__judge__project", pk=run_id)
    try:
        bias_run_cancel(run=run)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Bias battery {run.pk} cancelled; the answers it received stay in the cache.")
    return redirect("bias_run_detail", slug, run.pk)


@login_required
@require_GET
def bias_run_detail(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    run = access.get_object_or_404(
        BiasRun.objects.select_related("version__judge__criterion", "created_by"),
        via="version__judge__project",
        pk=run_id,
    )
    max_flip_rate = bias_bar(project=access.project)
    report = run.report if run.status == BiasRun.Status.DONE else None
    problems = bias_problems(report, max_flip_rate=max_flip_rate) if report else []
    context = {
        "project": access.project,
        "access": access,
        "run": run,
        "judge": run.version.judge,
        "version": run.version,
        "percent": round(100 * run.done / run.total) if run.total else (100 if run.is_finished else 0),
        "rows": bias_rows(report, max_flip_rate=max_flip_rate) if report else [],
        "problems": problems,
        "max_flip_rate_text": percent(max_flip_rate),
    }
    if request.htmx:
        response = render(request, "judges/bias_run.html#state", context)
        return HttpResponseStopPolling(response.content) if run.is_finished else response
    return render(request, "judges/bias_run.html", context)
