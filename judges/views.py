"""The judges pages: every criterion's judges and their alignment, a run's progress and report, and the traces on
which a judge and the expert disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.selectors import relabel_drift
from annotation.services import DomainError
from core.runs import WAITS_FOR_WORKER, run_waits_for_worker
from judges.examples import disagreement_example_states
from judges.models import Judge, JudgeRun
from judges.pages import judge_list_sections
from judges.promotions import RULE, Bar, bias_bar, promotion_bar
from judges.providers.bias import percent as flip_percent
from judges.reliability import self_agreement
from judges.selectors import (
    DISAGREEMENT_KINDS,
    recent_runs,
    run_disagreements_page,
    run_progress,
)
from judges.services import judge_run_cancel, judge_run_enqueue
from judges.stats import METRICS
from judges.views_bias import annotate_judge_list
from judges.views_guardrails import guardrails_page_context
from judges.views_versions import run_button_context

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


# --- presentation of a report (pure: the report dict in, rows for the template out) ---------------------------


# The metrics the project's bar sets a minimum for, and which minimum (recall on fail is the TNR).
BAR_MINIMUMS = {"tpr": "min_tpr", "tnr": "min_tnr", "recall_fail": "min_tnr"}


@dataclass(frozen=True)
class MetricRow:
    key: str
    label: str
    value: float | None
    low: float | None
    high: float | None
    # The bar's minimum for this metric (the project's bar), None for the metrics the bar says nothing about.
    target: float | None = None

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
    def target_x(self) -> float:
        return self._x(self.target)

    @property
    def meets_target(self) -> bool:
        """The point estimate reaches the bar's line (whether it does on evidence is the report's badge)."""
        return self.value is not None and self.target is not None and self.value >= self.target


def metric_rows(report: dict[str, Any], bar: Bar) -> list[MetricRow]:
    rows = []
    for key in METRICS:
        interval = (report.get("ci") or {}).get(key)
        low, high = interval if interval else (None, None)
        target = getattr(bar, BAR_MINIMUMS[key]) if key in BAR_MINIMUMS else None
        rows.append(
            MetricRow(key=key, label=METRIC_LABELS[key], value=report.get(key), low=low, high=high, target=target)
        )
    return rows


# --- the judges page -----------------------------------------------------------------------------------------------


@login_required
@require_GET
def judge_list(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    sections = judge_list_sections(project=project)
    annotate_judge_list(project=project, sections=sections, max_flip_rate=bias_bar(project=project))
    context = {
        "project": project,
        "access": access,
        "sections": sections,
        "bar": promotion_bar(project=project),
        "max_flip_rate": (max_flip_rate := bias_bar(project=project)),
        "max_flip_rate_text": flip_percent(max_flip_rate),
        "promotion_rule": RULE,
        "recent_runs": recent_runs(project=project),
        "split_choices": JudgeRun.Split.choices,
        **run_button_context(),
        "relabel_drift": relabel_drift(project=project),
        **guardrails_page_context(project=project),
    }
    return render(request, "judges/judge_list.html", context)


@login_required
@require_POST
def judge_run_create(request: HttpRequest, slug: str, judge_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.RUN_JUDGES)
    judge = access.get_object_or_404(Judge, pk=judge_id)
    number = request.POST.get("version", "").strip()
    split = request.POST.get("split", "").strip()
    version = None
    if number.isdigit():
        version = judge.versions.filter(number=int(number)).first()
    if version is None:
        messages.error(request, f"{judge.name}: version {number or '(none)'} does not exist; pick one from the list.")
        return redirect("judge_list", slug)
    try:
        run = judge_run_enqueue(version=version, split=split, user=request.user)
    except DomainError as exc:
        messages.error(request, f"{judge.name}: {exc}")
        return redirect("judge_list", slug)
    if run_waits_for_worker(run):
        messages.warning(request, WAITS_FOR_WORKER)
    return redirect("judge_run_detail", slug, run.pk)


# --- one run -----------------------------------------------------------------------------------------------------


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
    bar = promotion_bar(project=access.project)
    context: dict[str, Any] = {
        "project": access.project,
        "access": access,
        "run": run,
        "judge": run.version.judge,
        "progress": run_progress(run=run),
        "bar": bar,
        "is_test_run": run.split == JudgeRun.Split.TEST,
    }
    if run.status == JudgeRun.Status.DONE and run.report:
        kind, after, errors = _disagreement_filters(request)
        report = run.report
        disagreements = run_disagreements_page(run=run, kind=kind, after_trace_id=after, limit=DISAGREEMENTS_PER_PAGE)
        page = disagreements.judgments
        base = reverse("judge_run_detail", args=[access.project.slug, run.pk])
        next_url = None
        if disagreements.has_more:
            query = {"after": page[-1].trace_id, **({"kind": kind} if kind else {})}
            next_url = f"{base}?{urlencode(query)}"
        # An LLM judge's disagreements can become few-shot examples, train-split traces only (no leakage), and never
        # from a test run (test is held out: reported, not tuned on).
        states = disagreement_example_states(
            judge=run.version.judge, external_ids=[j.trace.external_id for j in page], run=run
        )
        for judgment in page:
            judgment.example_state = states.get(judgment.trace.external_id, "")
        # The ceiling beside the bar: the expert's agreement with their own blind re-reviews on this criterion.
        ceiling = self_agreement(project=access.project, criterion=run.version.judge.criterion)
        context.update(
            self_agreement=ceiling[0] if ceiling else None,
            report=report,
            rows=metric_rows(report, bar),
            check=bar.check(report),
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
    run = access.get_object_or_404(
        JudgeRun.objects.select_related("version__judge__criterion", "created_by"),
        via="version__judge__project",
        pk=run_id,
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
    access = get_project_for_user(request, slug, Permission.RUN_JUDGES)
    run = access.get_object_or_404(JudgeRun, via="version__judge__project", pk=run_id)
    try:
        judge_run_cancel(run=run)
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Run {run.pk} cancelled.")
    return redirect("judge_run_detail", slug, run.pk)
