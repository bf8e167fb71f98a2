"""The agents page: outcome graders, their grading progress, pass@k / pass^k per task and overall; one task's
trials."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling, reswap, retarget

from agents.charts import reliability_chart
from agents.forms import GraderForm
from agents.models import OutcomeGrader
from agents.reliability import MAX_K, task_row
from agents.selectors import (
    TASK_ORDERS,
    grader_latest_run,
    grader_promotion,
    grader_statistics,
    grader_task_detail,
    graders,
    latest_runs,
    task_rows,
)
from agents.services import grader_create, grader_promote, grader_withdraw, grading_run_enqueue
from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.services import DomainError
from core.runs import WAITS_FOR_WORKER, run_waits_for_worker
from judges.stats import DEFAULT_RESAMPLES

TASKS_PER_PAGE = 50
DEFAULT_K = 5
ORDER_LABELS = {
    "task": "task id",
    "pass1": "pass@1, lowest first",
    "-pass1": "pass@1, highest first",
    "trials": "most trials first",
}


def _int_param(request: HttpRequest, name: str, default: int, low: int, high: int) -> int:
    try:
        value = int(request.GET.get(name, default))
    except ValueError:
        return default
    return min(max(value, low), high)


def _grader_context(request: HttpRequest, access: ProjectAccess, grader: OutcomeGrader) -> dict[str, Any]:
    k = _int_param(request, "k", DEFAULT_K, 1, MAX_K)
    order = request.GET.get("order", "task")
    if order not in TASK_ORDERS:
        order = "task"
    search = request.GET.get("q", "").strip()[:255]
    totals, rows = grader_statistics(grader=grader)
    page = Paginator(task_rows(grader=grader, order=order, search=search), TASKS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    base = reverse("agents", args=[access.project.slug])

    def link(**changes: Any) -> str:
        params = {"grader": grader.pk, "k": k, "order": order, "q": search, "page": page.number} | changes
        return f"{base}?{urlencode({key: value for key, value in params.items() if value not in ('', None)})}"

    return {
        "grader": grader,
        "run": grader_latest_run(grader=grader),
        "monitoring": grader_promotion(grader=grader),
        "totals": totals,
        "rows": rows,
        "chart": reliability_chart(rows),
        "k": k,
        "k_choices": range(1, MAX_K + 1),
        "resamples": f"{DEFAULT_RESAMPLES:,}",
        "order": order,
        "order_choices": ORDER_LABELS.items(),
        "search": search,
        "tasks_page": page,
        "task_rows": [
            task_row(task_id=row["task_id"], n=row["n"], c=row["c"], errors=row["errors"], k=k)
            for row in page.object_list
        ],
        "prev_link": link(page=page.previous_page_number()) if page.has_previous() else None,
        "next_link": link(page=page.next_page_number()) if page.has_next() else None,
        "few_tasks": 0 < (rows[0].tasks if rows else 0) < 10,
    }


def _page_context(
    request: HttpRequest, access: ProjectAccess, form: GraderForm | None = None, grader_id: int | None = None
) -> dict[str, Any]:
    project_graders = graders(project=access.project)
    selected = None
    wanted = str(grader_id) if grader_id is not None else request.GET.get("grader")
    if wanted:
        selected = next((g for g in project_graders if str(g.pk) == wanted), None)
        if selected is None:
            raise Http404("No such grader")
    elif project_graders:
        selected = max(project_graders, key=lambda g: (g.created_at, g.pk))
    latest = latest_runs(graders=project_graders)
    context: dict[str, Any] = {
        "project": access.project,
        "access": access,
        "graders": project_graders,
        "grader_items": [(g, latest.get(g.pk)) for g in project_graders],
        "selected": selected,
        "form": form if form is not None else (GraderForm() if access.can(Permission.GRADE_TRIALS) else None),
    }
    if selected is not None:
        context.update(_grader_context(request, access, selected))
    return context


@login_required
@require_GET
def agents_page(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    context = _page_context(request, access)
    if request.htmx and context["selected"] is not None and request.htmx.target == "tasks":
        return render(request, "agents/agents.html#tasks", context)
    return render(request, "agents/agents.html", context)


@login_required
@require_POST
def grader_create_view(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.GRADE_TRIALS)
    form = GraderForm(request.POST)
    if form.is_valid():
        try:
            grader = grader_create(
                project=access.project,
                name=form.cleaned_data["name"],
                target=form.cleaned_data["target"],
                config=form.cleaned_data["config"],
                description=form.cleaned_data["description"],
                user=request.user,
            )
        except DomainError as exc:
            field, _, message = str(exc).partition(": ")
            form.add_error(field if field in form.fields else None, message or str(exc))
        else:
            messages.success(request, f"Grader {grader.name!r} created. Grade the trials to see pass@k and pass^k.")
            return redirect(f"{reverse('agents', args=[slug])}?grader={grader.pk}")
    return render(request, "agents/agents.html", _page_context(request, access, form=form), status=400)


@login_required
@require_POST
def grading_run_create(request: HttpRequest, slug: str, grader_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.GRADE_TRIALS)
    grader = access.get_object_or_404(OutcomeGrader, pk=grader_id)
    run = grading_run_enqueue(grader=grader, user=request.user)
    if run_waits_for_worker(run):
        messages.warning(request, WAITS_FOR_WORKER)
    return redirect(f"{reverse('agents', args=[slug])}?grader={grader.pk}")


@login_required
@require_POST
def grader_monitoring(request: HttpRequest, slug: str, grader_id: int) -> HttpResponse:
    """Promote the grader into production monitoring, or withdraw it: the task completion of production agent
    trials as a monitored series."""
    access = get_project_for_user(request, slug, Permission.GRADE_TRIALS)
    grader = access.get_object_or_404(OutcomeGrader, pk=grader_id)
    action = request.POST.get("action")
    if action == "promote":
        grader_promote(grader=grader, user=request.user)
        messages.success(
            request,
            f"{grader.name} is promoted into monitoring: it judges production agent trials from now on, and their "
            "task-completion rate is a series with intervals and alert rules.",
        )
    elif action == "withdraw":
        grader_withdraw(grader=grader, user=request.user)
        messages.success(request, f"{grader.name} no longer judges production traffic; its verdicts are kept.")
    else:
        messages.error(request, f"action: expected promote or withdraw, got {action!r}.")
    return redirect(f"{reverse('agents', args=[slug])}?grader={grader.pk}")


@login_required
@require_GET
def grading_progress(request: HttpRequest, slug: str, grader_id: int) -> HttpResponse:
    """Polled while a run is going: the progress bar; once the run ends, the whole grader section (with the new
    statistics) replaces the bar's section and polling stops."""
    access = get_project_for_user(request, slug)
    grader = access.get_object_or_404(OutcomeGrader, pk=grader_id)
    run = grader_latest_run(grader=grader)
    if run is not None and not run.is_finished:
        return render(request, "agents/agents.html#progress", {"project": access.project, "grader": grader, "run": run})
    context = _page_context(request, access, grader_id=grader.pk)
    response = render(request, "agents/agents.html#grader", context)
    response = retarget(reswap(response, "outerHTML"), "#grader-section")
    return HttpResponseStopPolling(response.content, headers=dict(response.headers))


@login_required
@require_GET
def task_detail(request: HttpRequest, slug: str, grader_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    grader = access.get_object_or_404(OutcomeGrader, pk=grader_id)
    task_id = request.GET.get("id", "")
    detail = grader_task_detail(grader=grader, task_id=task_id)
    if detail is None:
        raise Http404("No graded trial of this task")
    return render(
        request,
        "agents/task_detail.html",
        {
            "project": access.project,
            "access": access,
            "grader": grader,
            "task_id": task_id,
            "trials": detail.trials,
            "n": detail.n,
            "c": detail.c,
            "errors": detail.errors,
            "pass_at_1_ci": detail.pass_at_1_ci,
            "estimates": detail.estimates,
            "truncated": detail.truncated,
        },
    )
