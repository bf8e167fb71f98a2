"""The judges pages: every criterion's judges and their alignment, a run's progress and report, and the traces on
which a judge and the expert disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.access import ProjectAccess, get_project_for_user
from annotation.models import Criterion
from annotation.services import DomainError
from annotation.suggestions import llm_configured
from judges.ladder import Ladder, cost_ladders
from judges.models import Judge, JudgeRun, JudgeVersion
from judges.selectors import (
    DISAGREEMENT_KINDS,
    judges_with_versions,
    latest_finished_runs,
    project_split_counts,
    recent_runs,
    run_disagreements,
    run_judged_count,
)
from judges.services import judge_run_cancel, judge_run_enqueue
from judges.splits import SPLITS
from judges.stats import METRICS
from judges.views_promotion import CriterionPromotion, criterion_promotions
from judges.views_versions import LLM_ENDPOINT_HELP, disagreement_example_states, run_button_context

# DESIGN.md: iterate until agreement is above 90%. A judge is aligned when TPR and TNR both reach it.
TARGET = 0.9
DISAGREEMENTS_PER_PAGE = 25
METRIC_LABELS = {
    "tpr": "TPR (expert pass → judge pass)",
    "tnr": "TNR (expert fail → judge fail)",
    "precision_fail": "Precision on fail",
    "recall_fail": "Recall on fail",
    "f1_fail": "F1 on fail",
    "accuracy": "Accuracy (agreement)",
    "kappa": "Cohen's κ",
}
KIND_LABELS = {"false_pass": "False pass", "false_fail": "False fail"}


def _require_runner(access: ProjectAccess) -> None:
    if not access.can_ingest:
        raise PermissionDenied("Only the expert and engineers can run judges; viewers see the results")


# --- presentation of a report (pure: the report dict in, rows for the template out) ---------------------------


@dataclass(frozen=True)
class MetricRow:
    key: str
    label: str
    value: float | None
    low: float | None
    high: float | None

    @staticmethod
    def _x(value: float | None) -> float:
        """Position on the 0–1 bar, in percent; κ can be negative, which is drawn at 0."""
        return round(min(max(value or 0.0, 0.0), 1.0) * 100, 2)

    @property
    def value_x(self) -> float:
        return self._x(self.value)

    @property
    def low_x(self) -> float:
        return self._x(self.low)

    @property
    def high_x(self) -> float:
        return self._x(self.high)

    @property
    def meets_target(self) -> bool:
        return self.value is not None and self.value >= TARGET


def metric_rows(report: dict[str, Any]) -> list[MetricRow]:
    rows = []
    for key in METRICS:
        interval = (report.get("ci") or {}).get(key)
        low, high = interval if interval else (None, None)
        rows.append(MetricRow(key=key, label=METRIC_LABELS[key], value=report.get(key), low=low, high=high))
    return rows


def alignment_verdict(report: dict[str, Any] | None) -> str:
    """Whether TPR and TNR both reach the target: "aligned", "below", or "undefined" when either cannot be
    computed (the split has no expert pass or no expert fail)."""
    if not report or report.get("tpr") is None or report.get("tnr") is None:
        return "undefined"
    return "aligned" if report["tpr"] >= TARGET and report["tnr"] >= TARGET else "below"


# --- the judges page -----------------------------------------------------------------------------------------------


@dataclass
class JudgeSummary:
    judge: Judge
    versions: list[JudgeVersion]
    # (split, its latest done run or None, alignment_verdict of that run), in split order; "all" last.
    runs: list[tuple[str, JudgeRun | None, str]]


@dataclass
class CriterionSection:
    criterion: Criterion
    splits: list[tuple[str, int, int]]  # (split, pass count, fail count)
    judges: list[JudgeSummary]
    # The cost ladder on dev: every judge's latest dev run, cheapest first (None before any dev run).
    ladder: Ladder | None = None
    promotion: CriterionPromotion | None = None


@login_required
@require_GET
def judge_list(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    counts = project_split_counts(project=project)
    latest = latest_finished_runs(project=project)
    by_criterion: dict[int, list[JudgeSummary]] = {}
    for judge in judges_with_versions(project=project):
        runs = []
        for split in (*SPLITS, JudgeRun.Split.ALL):
            run = latest.get((judge.pk, split))
            # "all" is shown only when it was run (an external judge's import is one); every split always is.
            if run is not None or split != JudgeRun.Split.ALL:
                runs.append((split, run, alignment_verdict(run.report) if run else ""))
        summary = JudgeSummary(judge=judge, versions=list(judge.versions.all()), runs=runs)
        by_criterion.setdefault(judge.criterion_id, []).append(summary)
    judges_by_id = {summary.judge.pk: summary.judge for summaries in by_criterion.values() for summary in summaries}
    ladders = cost_ladders(
        [(judges_by_id[judge_id], run) for (judge_id, split), run in latest.items() if split == "dev"]
    )
    promotions = criterion_promotions(project=project)
    sections = []
    for criterion in Criterion.objects.filter(project=project).order_by("position", "id"):
        split_count = counts[criterion.pk]
        sections.append(
            CriterionSection(
                criterion=criterion,
                splits=[(split, split_count[split]["pass"], split_count[split]["fail"]) for split in SPLITS],
                judges=by_criterion.get(criterion.pk, []),
                ladder=ladders.get(criterion.pk),
                promotion=promotions.get(criterion.pk),
            )
        )
    context = {
        "project": project,
        "access": access,
        "sections": sections,
        "recent_runs": recent_runs(project=project),
        "target": TARGET,
        **run_button_context(),
    }
    return render(request, "judges/judge_list.html", context)


@login_required
@require_POST
def judge_run_create(request: HttpRequest, slug: str, judge_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    _require_runner(access)
    judge = get_object_or_404(Judge, pk=judge_id, project=access.project)
    number = request.POST.get("version", "").strip()
    split = request.POST.get("split", "").strip()
    version = None
    if number.isdigit():
        version = judge.versions.filter(number=int(number)).first()
    if version is None:
        messages.error(request, f"{judge.name}: version {number or '(none)'} does not exist; pick one from the list.")
        return redirect("judge_list", slug)
    if judge.kind == Judge.Kind.LLM and not llm_configured():
        # Queued, such a run would fail on every call, later and on the worker; say now what to set instead.
        messages.error(request, f"{judge.name}: {LLM_ENDPOINT_HELP}")
        return redirect("judge_list", slug)
    try:
        run = judge_run_enqueue(version=version, split=split, user=request.user)
    except DomainError as exc:
        messages.error(request, f"{judge.name}: {exc}")
        return redirect("judge_list", slug)
    return redirect("judge_run_detail", slug, run.pk)


# --- one run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    done: int
    total: int
    eta: timedelta | None
    finished: bool = False

    @property
    def percent(self) -> int:
        # A finished run is complete even when an external judge's copy covered fewer traces than the split.
        return 100 if self.finished or not self.total else min(100, self.done * 100 // self.total)

    @property
    def eta_seconds(self) -> int | None:
        return None if self.eta is None else max(1, round(self.eta.total_seconds()))


def _progress(run: JudgeRun) -> Progress:
    done = run_judged_count(run)
    if run.is_finished:
        return Progress(done=done, total=run.total, eta=None, finished=True)
    eta = None
    if run.started_at and 0 < done < run.total:
        elapsed = timezone.now() - run.started_at
        eta = elapsed * ((run.total - done) / done)
    return Progress(done=done, total=run.total, eta=eta)


def _disagreement_filters(request: HttpRequest) -> tuple[str | None, int | None, list[str]]:
    """The kind and keyset cursor from the query string, with an error for each bad value (then ignored)."""
    errors = []
    kind = request.GET.get("kind") or None
    if kind is not None and kind not in DISAGREEMENT_KINDS:
        errors.append(f"kind: expected one of {', '.join(DISAGREEMENT_KINDS)}, got {kind!r}; showing all kinds")
        kind = None
    after_raw = request.GET.get("after") or None
    after = None
    if after_raw is not None:
        if after_raw.isdigit():
            after = int(after_raw)
        else:
            errors.append(f"after: expected a trace number, got {after_raw!r}; showing the first page")
    return kind, after, errors


def _run_context(request: HttpRequest, access: ProjectAccess, run: JudgeRun) -> dict[str, Any]:
    context: dict[str, Any] = {
        "project": access.project,
        "access": access,
        "run": run,
        "judge": run.version.judge,
        "progress": _progress(run),
        "target": TARGET,
        "target_x": TARGET * 100,
    }
    if run.status == JudgeRun.Status.DONE and run.report:
        kind, after, errors = _disagreement_filters(request)
        report = run.report
        counted = {"false_pass": report["fp"], "false_fail": report["fn"]}.get(kind or "", report["fp"] + report["fn"])
        page = []
        # None of this kind in the report: skip a query that would scan every judgment of the run to find none.
        if counted:
            page = list(run_disagreements(run=run, kind=kind, after_trace_id=after, limit=DISAGREEMENTS_PER_PAGE + 1))
        base = reverse("judge_run_detail", args=[access.project.slug, run.pk])
        next_url = None
        if len(page) > DISAGREEMENTS_PER_PAGE:
            page = page[:DISAGREEMENTS_PER_PAGE]
            query = {"after": page[-1].trace_id, **({"kind": kind} if kind else {})}
            next_url = f"{base}?{urlencode(query)}"
        # An LLM judge's disagreements can become few-shot examples, train-split traces only (no leakage).
        states = disagreement_example_states(judge=run.version.judge, external_ids=[j.trace.external_id for j in page])
        for judgment in page:
            judgment.example_state = states.get(judgment.trace.external_id, "")
        context.update(
            report=report,
            rows=metric_rows(report),
            verdict=alignment_verdict(report),
            disagreements=page,
            kind=kind,
            filter_errors=errors,
            kind_tabs=[
                (None, "All", report["fp"] + report["fn"], base),
                ("false_pass", "False pass", report["fp"], f"{base}?kind=false_pass"),
                ("false_fail", "False fail", report["fn"], f"{base}?kind=false_fail"),
            ],
            first_page_url=f"{base}?kind={kind}" if kind else base,
            is_first_page=after is None,
            next_url=next_url,
        )
    return context


@login_required
@require_GET
def judge_run_detail(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    run = get_object_or_404(
        JudgeRun.objects.select_related("version__judge__criterion", "created_by"),
        pk=run_id,
        version__judge__project=access.project,
    )
    context = _run_context(request, access, run)
    if request.htmx:
        if request.htmx.target == "disagreements":
            return render(request, "judges/run_detail.html#disagreements", context)
        response = render(request, "judges/run_detail.html#state", context)
        if run.is_finished:
            # 286 tells htmx to swap in this final state (the report) and stop polling.
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "judges/run_detail.html", context)


@login_required
@require_POST
def judge_run_cancel_view(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    _require_runner(access)
    run = get_object_or_404(JudgeRun, pk=run_id, version__judge__project=access.project)
    try:
        judge_run_cancel(run=run)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run {run.pk} cancelled.")
    return redirect("judge_run_detail", slug, run.pk)
