"""Two judge versions side by side on the traces both judged: their agreement with the expert, McNemar's paired
test, paired bootstrap differences, a plain verdict, and the traces where they differ.

`?a=<run id>&b=<run id>` names two finished runs of the same criterion; `?judge=<id>&va=N&vb=M&split=dev` (and
`judge_b=<id>` for a version of another judge of that criterion) takes each version's latest finished run on the
split. Counting is one GROUP BY over the two runs' judgments (a full outer join on the trace), so the page costs
the same whatever the split's size; the list of differing traces is a keyset page.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from annotation.access import ProjectAccess, get_project_for_user
from judges.models import JudgeRun
from judges.pages import judge_run_comparison
from judges.selectors import (
    RunPairError,
    comparable_run,
    differing_traces,
    judge_choices,
    latest_comparable_run,
    run_pair_check,
)
from judges.views import METRIC_LABELS

DIFFERENCES_PER_PAGE = 25
SHOWN_METRICS = ("tpr", "tnr", "kappa", "accuracy")


class CompareError(Exception):
    """A bad or impossible request; the message names the parameter."""


def _int_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise CompareError(f"{name}: expected a number, got {raw!r}")
    return int(raw)


def resolve_runs(request: HttpRequest, access: ProjectAccess) -> tuple[JudgeRun, JudgeRun]:
    """The two runs the query names, parameters read in the order their errors are reported."""
    project = access.project
    a_id, b_id = _int_param(request, "a"), _int_param(request, "b")
    if a_id is not None or b_id is not None:
        if a_id is None or b_id is None:
            raise CompareError("a, b: name two runs, like ?a=12&b=15")
        run_a = comparable_run(project=project, run_id=a_id, name="a")
        run_b = comparable_run(project=project, run_id=b_id, name="b")
    else:
        judge_id = _int_param(request, "judge")
        va, vb = _int_param(request, "va"), _int_param(request, "vb")
        if judge_id is None or va is None or vb is None:
            raise CompareError("name two runs (?a=12&b=15) or a judge and two versions (?judge=3&va=1&vb=2&split=dev)")
        split = request.GET.get("split", "dev").strip() or "dev"
        if split not in JudgeRun.Split.values:
            raise CompareError(f"split: expected one of {', '.join(JudgeRun.Split.values)}, got {split!r}")
        judge_b = _int_param(request, "judge_b") or judge_id
        run_a = latest_comparable_run(project=project, judge_id=judge_id, number=va, split=split, name="va")
        run_b = latest_comparable_run(project=project, judge_id=judge_b, number=vb, split=split, name="vb")
    run_pair_check(run_a=run_a, run_b=run_b)
    return run_a, run_b


@login_required
@require_GET
def judge_compare(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    judges = judge_choices(project=project)
    context: dict[str, Any] = {"project": project, "access": access, "judges": judges, "splits": JudgeRun.Split.choices}
    if not request.GET:
        # A bare visit: the picker alone, not an error.
        return render(request, "judges/compare.html", context)
    try:
        run_a, run_b = resolve_runs(request, access)
        after = _int_param(request, "after")
    except (CompareError, RunPairError) as exc:
        context["error"] = str(exc)
        return render(request, "judges/compare.html", context, status=400)
    compared = judge_run_comparison(run_a=run_a, run_b=run_b)
    comparison = compared.comparison
    rows = []
    for key in SHOWN_METRICS:
        rows.append(
            {
                "key": key,
                "label": METRIC_LABELS[key],
                "a": comparison.metrics_a[key],
                "a_ci": comparison.ci_a[key],
                "b": comparison.metrics_b[key],
                "b_ci": comparison.ci_b[key],
                "diff": {"tpr": comparison.tpr, "tnr": comparison.tnr, "accuracy": comparison.accuracy}.get(key),
            }
        )
    page = differing_traces(run_a=run_a, run_b=run_b, after_trace_id=after, limit=DIFFERENCES_PER_PAGE + 1)
    base = reverse("judge_compare", args=[slug])
    query = {"a": run_a.pk, "b": run_b.pk}
    next_url = None
    if len(page) > DIFFERENCES_PER_PAGE:
        page = page[:DIFFERENCES_PER_PAGE]
        next_url = f"{base}?{urlencode({**query, 'after': page[-1]['trace_id']})}"
    context.update(
        run_a=run_a,
        run_b=run_b,
        name_a=compared.name_a,
        name_b=compared.name_b,
        criterion=compared.criterion,
        comparison=comparison,
        rows=rows,
        excluded=compared.excluded,
        differences=page,
        next_url=next_url,
        first_url=f"{base}?{urlencode(query)}",
        is_first_page=after is None,
        swap_url=f"{base}?{urlencode({'a': run_b.pk, 'b': run_a.pk})}",
    )
    return render(request, "judges/compare.html", context)
