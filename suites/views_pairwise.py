"""The pairwise section of the suite comparison page: start a pairwise comparison of the two runs with an LLM judge
version (both orders for every pair), and one comparison's state, polled while the worker judges it."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.access import Permission, get_project_for_user
from judges.models import JudgeVersion
from suites.models import PairwiseComparison, SuiteRun
from suites.pairwise import PairwiseInputError, PairwiseView, pairwise_comparison_enqueue, pairwise_disagreements
from suites.views_compare import DISAGREED_SHOWN


def _compare_url(slug: str, a: object, b: object) -> str:
    return f"{reverse('suite_compare', args=[slug])}?a={a}&b={b}#pairwise"


@login_required
@require_POST
def pairwise_start(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.RUN_SUITE)
    a, b, version_id = (request.POST.get(name, "").strip() for name in ("a", "b", "version"))
    if not (a.isdigit() and b.isdigit()):
        messages.error(request, "a, b: name the two suite runs to compare")
        return redirect("suite_run_list", slug=slug)
    baseline = access.get_object_or_404(SuiteRun, pk=int(a))
    candidate = access.get_object_or_404(SuiteRun, pk=int(b))
    version = (
        access.get_object_or_404(JudgeVersion.objects.select_related("judge"), via="judge__project", pk=int(version_id))
        if version_id.isdigit()
        else None
    )
    if version is None:
        messages.error(request, "version: pick the LLM judge version to compare with")
        return redirect(_compare_url(slug, a, b))
    try:
        pairwise_comparison_enqueue(
            project=access.project,
            baseline=baseline,
            candidate=candidate,
            criterion=version.judge.criterion,
            version=version,
            user=request.user,
        )
    except PairwiseInputError as exc:
        messages.error(request, str(exc))
    return redirect(_compare_url(slug, a, b))


@login_required
@require_GET
def pairwise_detail(request: HttpRequest, slug: str, comparison_id: int) -> HttpResponse:
    """One comparison's card (the compare page's fragment), for the page's polling and as a page of its own."""
    access = get_project_for_user(request, slug)
    comparison = access.get_object_or_404(
        PairwiseComparison.objects.select_related("criterion", "judge_version__judge", "baseline", "candidate"),
        pk=comparison_id,
    )
    rows = list(pairwise_disagreements(comparison=comparison)[: DISAGREED_SHOWN + 1])
    view = PairwiseView(
        comparison=comparison, disagreed=rows[:DISAGREED_SHOWN], disagreed_capped=len(rows) > DISAGREED_SHOWN
    )
    context = {"project": access.project, "access": access, "view": view, "disagreed_shown": DISAGREED_SHOWN}
    if not request.htmx:
        return render(request, "suites/pairwise_detail.html", context)
    response = render(request, "suites/_pairwise_comparison.html", context)
    # 286 tells htmx to swap in this final state and stop polling.
    return HttpResponseStopPolling(response.content) if comparison.is_finished else response
