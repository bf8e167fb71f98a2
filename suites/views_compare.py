"""Two regression-suite runs side by side: per criterion, each run's pass rate with its Wilson interval, McNemar's
paired test on the cases both ran (same golden trace, same criterion), the pass-rate difference with a paired
bootstrap interval, a verdict, and the cases that flipped (pass→fail first).

`/projects/{slug}/suites/compare/?a=<suite run id>&b=<suite run id>`: B is the candidate, A the baseline. Counting is
two GROUP BYs over the runs' verdicts, so the page costs the same whatever the golden set's size; flips are a
bounded list.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.access import ProjectAccess, get_project_for_user
from annotation.models import Criterion, Trace
from judges.comparison import RateWithInterval, compare_runs
from suites.models import SuiteCase, SuiteRun, SuiteVerdict

FLIPS_SHOWN = 100
# Keys name finished runs, whose verdicts never change; this only bounds how long an unopened comparison stays cached.
CACHE_SECONDS = 24 * 3600


class CompareError(Exception):
    """A bad request; the message names the parameter."""


def _run(access: ProjectAccess, request: HttpRequest, name: str) -> SuiteRun:
    raw = request.GET.get(name, "").strip()
    if not raw:
        raise CompareError(f"{name}: name two suite runs, like ?a=12&b=15 (A the baseline, B the candidate)")
    if not raw.isdigit():
        raise CompareError(f"{name}: expected a suite run number, got {raw!r}")
    run = SuiteRun.objects.filter(pk=int(raw), project=access.project).first()
    if run is None:
        raise CompareError(f"{name}: suite run {raw} is not a suite run of this project")
    return run


def pass_counts(run: SuiteRun) -> dict[int, tuple[int, int]]:
    """criterion id → (passes, cases with a verdict) in the run; errors (empty verdict) are neither."""
    rows = (
        SuiteVerdict.objects.filter(case__run=run)
        .exclude(verdict="")
        .values("criterion_id")
        .annotate(passes=Count("id", filter=Q(verdict="pass")), n=Count("id"))
        .order_by()
    )
    return {row["criterion_id"]: (row["passes"], row["n"]) for row in rows}


def paired_counts(run_a: SuiteRun, run_b: SuiteRun) -> dict[int, dict[tuple[str, str], int]]:
    """criterion id → (A's verdict, B's verdict) → count, over the cases of both runs with the same golden trace
    and a verdict (not an error) on the criterion in both."""
    case, verdict = SuiteCase._meta.db_table, SuiteVerdict._meta.db_table
    sql = f"""
        SELECT va.criterion_id, va.verdict, vb.verdict, COUNT(*)
        FROM {case} ca
        JOIN {case} cb ON cb.run_id = %s AND cb.trace_id = ca.trace_id
        JOIN {verdict} va ON va.case_id = ca.id
        JOIN {verdict} vb ON vb.case_id = cb.id AND vb.criterion_id = va.criterion_id
        WHERE ca.run_id = %s AND va.verdict <> '' AND vb.verdict <> ''
        GROUP BY 1, 2, 3
    """  # noqa: S608 — table names come from the models, every value is a parameter
    out: dict[int, dict[tuple[str, str], int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_b.pk, run_a.pk])
        for criterion_id, a, b, n in cursor.fetchall():
            out.setdefault(criterion_id, {})[(a, b)] = n
    return out


def flipped_cases(run_a: SuiteRun, run_b: SuiteRun, *, limit: int) -> list[dict[str, Any]]:
    """Cases whose verdict changed between the runs, pass→fail first, then by criterion and trace."""
    case, verdict, trace = SuiteCase._meta.db_table, SuiteVerdict._meta.db_table, Trace._meta.db_table
    sql = f"""
        SELECT va.criterion_id, t.external_id, va.verdict, vb.verdict, vb.reasoning
        FROM {case} ca
        JOIN {case} cb ON cb.run_id = %s AND cb.trace_id = ca.trace_id
        JOIN {verdict} va ON va.case_id = ca.id
        JOIN {verdict} vb ON vb.case_id = cb.id AND vb.criterion_id = va.criterion_id
        JOIN {trace} t ON t.id = ca.trace_id
        WHERE ca.run_id = %s AND va.verdict <> '' AND vb.verdict <> '' AND va.verdict <> vb.verdict
        ORDER BY CASE WHEN va.verdict = 'pass' THEN 0 ELSE 1 END, va.criterion_id, ca.trace_id
        LIMIT %s
    """  # noqa: S608 — table names come from the models, every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [run_b.pk, run_a.pk, limit])
        rows = cursor.fetchall()
    return [
        {"criterion_id": c, "external_id": external_id, "a": a, "b": b, "reasoning": reasoning}
        for c, external_id, a, b, reasoning in rows
    ]


def _counts(access: ProjectAccess, run_a: SuiteRun, run_b: SuiteRun) -> tuple[Any, Any, Any, list[dict[str, Any]]]:
    """Pass counts of each run, paired counts and the first flips. A finished run's verdicts never change, so for two
    finished runs these are cached: a golden set of 20,000 cases × 3 criteria takes about a second to count."""

    def compute() -> tuple[Any, Any, Any, list[dict[str, Any]]]:
        return (
            pass_counts(run_a),
            pass_counts(run_b),
            paired_counts(run_a, run_b),
            flipped_cases(run_a, run_b, limit=FLIPS_SHOWN + 1),
        )

    finished = {SuiteRun.Status.DONE, SuiteRun.Status.FAILED}
    if run_a.status not in finished or run_b.status not in finished:
        return compute()
    # ISO times: str() of a datetime has a space, which cache backends warn about (memcached refuses such keys).
    stamps = ":".join(run.finished_at.isoformat() if run.finished_at else "" for run in (run_a, run_b))
    key = f"{access.project.cache_key('suite-compare')}:{run_a.pk}:{run_b.pk}:{stamps}"
    return cache.get_or_set(key, compute, timeout=CACHE_SECONDS)


def _name(run: SuiteRun) -> str:
    return run.name or f"run #{run.pk}"


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
    counts_a, counts_b, pairs, flips = _counts(access, run_a, run_b)
    criterion_ids = set(counts_a) | set(counts_b)
    criteria = {c.pk: c for c in Criterion.objects.filter(pk__in=criterion_ids, project=access.project)}
    name_a, name_b = _name(run_a), _name(run_b)
    if name_a == name_b:
        name_a, name_b = f"{name_a} (#{run_a.pk})", f"{name_b} (#{run_b.pk})"
    rows = []
    for criterion in sorted(criteria.values(), key=lambda c: (c.position, c.pk)):
        comparison = compare_runs(
            RateWithInterval(*counts_a.get(criterion.pk, (0, 0))),
            RateWithInterval(*counts_b.get(criterion.pk, (0, 0))),
            pairs.get(criterion.pk, {}),
            name_a=name_a,
            name_b=name_b,
        )
        rows.append({"criterion": criterion, "c": comparison})
    for flip in flips:
        flip["criterion"] = criteria.get(flip["criterion_id"])
    context.update(
        run_a=run_a,
        run_b=run_b,
        name_a=name_a,
        name_b=name_b,
        rows=rows,
        flips=flips[:FLIPS_SHOWN],
        flips_capped=len(flips) > FLIPS_SHOWN,
        flips_shown=FLIPS_SHOWN,
        total_flips=sum(row["c"].pass_to_fail + row["c"].fail_to_pass for row in rows),
        regressions=sum(row["c"].outcome == "worse" for row in rows),
    )
    return render(request, "suites/compare.html", context)
