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
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from annotation.access import ProjectAccess, get_project_for_user
from annotation.models import Label, Trace
from judges.comparison import compare_judges
from judges.models import Judge, JudgeRun, Judgment
from judges.promotions import latest_dev_run, promotion_bar
from judges.views import METRIC_LABELS

DIFFERENCES_PER_PAGE = 25
SHOWN_METRICS = ("tpr", "tnr", "kappa", "accuracy")
# Stamped keys never go stale; this only bounds how long a comparison nobody reopens stays in the cache.
COUNTS_CACHE_SECONDS = 24 * 3600
NOT_JUDGED = "-"  # in the joined counts: the run has no judgment for the trace (an error has verdict "")


class CompareError(Exception):
    """A bad or impossible request; the message names the parameter."""


def _int_param(request: HttpRequest, name: str) -> int | None:
    raw = request.GET.get(name, "").strip()
    if not raw:
        return None
    if not raw.isdigit():
        raise CompareError(f"{name}: expected a number, got {raw!r}")
    return int(raw)


def _run_of(access: ProjectAccess, run_id: int, name: str) -> JudgeRun:
    run = (
        JudgeRun.objects.filter(pk=run_id, version__judge__project=access.project)
        .select_related("version__judge__criterion", "version__judge__project")
        .first()
    )
    if run is None:
        raise CompareError(f"{name}: run {run_id} is not a run of this project")
    if run.status != JudgeRun.Status.DONE:
        raise CompareError(f"{name}: run {run_id} is {run.status}, not done; compare finished runs")
    return run


def _latest_run(access: ProjectAccess, judge_id: int, number: int, split: str, name: str) -> JudgeRun:
    judge = Judge.objects.filter(pk=judge_id, project=access.project).first()
    if judge is None:
        raise CompareError(f"judge: {judge_id} is not a judge of this project")
    version = judge.versions.filter(number=number).first()
    if version is None:
        raise CompareError(f"{name}: {judge.name} has no version {number}")
    if split == JudgeRun.Split.DEV:
        run = latest_dev_run(version)
    else:
        run = (
            JudgeRun.objects.filter(version=version, split=split, status=JudgeRun.Status.DONE)
            .order_by("-finished_at", "-id")
            .first()
        )
    if run is None:
        raise CompareError(f"{name}: {version} has no finished run on {split}; run it there first")
    return _run_of(access, run.pk, name)


def resolve_runs(request: HttpRequest, access: ProjectAccess) -> tuple[JudgeRun, JudgeRun]:
    a_id, b_id = _int_param(request, "a"), _int_param(request, "b")
    if a_id is not None or b_id is not None:
        if a_id is None or b_id is None:
            raise CompareError("a, b: name two runs, like ?a=12&b=15")
        run_a, run_b = _run_of(access, a_id, "a"), _run_of(access, b_id, "b")
    else:
        judge_id = _int_param(request, "judge")
        va, vb = _int_param(request, "va"), _int_param(request, "vb")
        if judge_id is None or va is None or vb is None:
            raise CompareError("name two runs (?a=12&b=15) or a judge and two versions (?judge=3&va=1&vb=2&split=dev)")
        split = request.GET.get("split", "dev").strip() or "dev"
        if split not in JudgeRun.Split.values:
            raise CompareError(f"split: expected one of {', '.join(JudgeRun.Split.values)}, got {split!r}")
        judge_b = _int_param(request, "judge_b") or judge_id
        run_a = _latest_run(access, judge_id, va, split, "va")
        run_b = _latest_run(access, judge_b, vb, split, "vb")
    if run_a.version.judge.criterion_id != run_b.version.judge.criterion_id:
        raise CompareError(
            f"b: run {run_b.pk} judges {run_b.version.judge.criterion.name!r}, run {run_a.pk} judges "
            f"{run_a.version.judge.criterion.name!r}; compare judges of the same criterion"
        )
    if run_a.pk == run_b.pk:
        raise CompareError(f"a, b: both name run {run_a.pk}; pick two different runs")
    return run_a, run_b


def joined_counts(run_a: JudgeRun, run_b: JudgeRun) -> dict[tuple[str, str, str], int]:
    """(expert verdict, A's verdict, B's verdict) → count over the expert-labelled traces either run judged;
    NOT_JUDGED where a run has no judgment for the trace, "" where its judgment was an error.

    Reading two runs of 200,000 judgments takes about a second, and every page of differing traces needs the counts
    again, so they are cached under a stamp of the criterion's labels (count, newest id, latest change): a label
    added, changed or deleted moves it. Finished runs' judgments do not change, so the run ids complete the key."""
    criterion_id = run_a.version.judge.criterion_id
    stamp = Label.objects.filter(criterion_id=criterion_id).aggregate(
        n=Count("id"), last=Max("id"), at=Max("updated_at")
    )
    at = stamp["at"].isoformat() if stamp["at"] else ""
    project = run_a.version.judge.project
    key = f"{project.cache_key('judge-compare')}:{run_a.pk}:{run_b.pk}:{stamp['n']}:{stamp['last']}:{at}"
    cached = cache.get(key)
    if cached is not None:
        return {tuple(k): n for k, n in cached}
    counts = _joined_counts_uncached(run_a, run_b)
    cache.set(key, [[list(k), n] for k, n in counts.items()], timeout=COUNTS_CACHE_SECONDS)
    return counts


def _joined_counts_uncached(run_a: JudgeRun, run_b: JudgeRun) -> dict[tuple[str, str, str], int]:
    judgment, label = Judgment._meta.db_table, Label._meta.db_table
    sql = f"""
        SELECT l.verdict, COALESCE(ja.verdict, %s), COALESCE(jb.verdict, %s), COUNT(*)
        FROM (SELECT trace_id, verdict FROM {judgment} WHERE run_id = %s) ja
        FULL OUTER JOIN (SELECT trace_id, verdict FROM {judgment} WHERE run_id = %s) jb ON jb.trace_id = ja.trace_id
        JOIN {label} l ON l.trace_id = COALESCE(ja.trace_id, jb.trace_id) AND l.criterion_id = %s
        GROUP BY 1, 2, 3
    """  # noqa: S608 — table names come from the models, every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [NOT_JUDGED, NOT_JUDGED, run_a.pk, run_b.pk, run_a.version.judge.criterion_id])
        return {(e, a, b): n for e, a, b, n in cursor.fetchall()}


def exclusions(counts: dict[tuple[str, str, str], int]) -> dict[str, int]:
    """Labelled traces left out of the comparison, by reason."""
    out = {"only_a": 0, "only_b": 0, "errors": 0}
    for (_e, a, b), n in counts.items():
        if b == NOT_JUDGED:
            out["only_a"] += n
        elif a == NOT_JUDGED:
            out["only_b"] += n
        elif not a or not b:
            out["errors"] += n
    return out


def differing_traces(
    run_a: JudgeRun, run_b: JudgeRun, *, after_trace_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """Labelled traces on which the two versions gave different verdicts, in trace order after the keyset cursor,
    with the expert's verdict and both judges' reasoning."""
    judgment, label, trace = Judgment._meta.db_table, Label._meta.db_table, Trace._meta.db_table
    sql = f"""
        SELECT t.id, t.external_id, l.verdict, ja.verdict, ja.reasoning, jb.verdict, jb.reasoning
        FROM {judgment} ja
        JOIN {judgment} jb ON jb.run_id = %s AND jb.trace_id = ja.trace_id
        JOIN {label} l ON l.trace_id = ja.trace_id AND l.criterion_id = %s
        JOIN {trace} t ON t.id = ja.trace_id
        WHERE ja.run_id = %s AND ja.verdict <> '' AND jb.verdict <> '' AND ja.verdict <> jb.verdict
          AND ja.trace_id > %s AND jb.trace_id > %s AND l.trace_id > %s AND t.id > %s
        ORDER BY ja.trace_id
        LIMIT %s
    """  # noqa: S608 — table names come from the models, every value is a parameter
    # The cursor is repeated on every joined table: PostgreSQL does not carry an inequality across a join, and
    # without it a merge join would walk the other indexes from the first trace to reach a deep page.
    after = after_trace_id or 0
    params = [run_b.pk, run_a.version.judge.criterion_id, run_a.pk, after, after, after, after, limit]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        {
            "trace_id": trace_id,
            "external_id": external_id,
            "expert": expert,
            "a": a,
            "a_reasoning": a_reasoning,
            "b": b,
            "b_reasoning": b_reasoning,
            "right": "a" if a == expert else "b",
        }
        for trace_id, external_id, expert, a, a_reasoning, b, b_reasoning in rows
    ]


def _run_name(run: JudgeRun, other: JudgeRun) -> str:
    version = run.version
    if version.judge_id == other.version.judge_id:
        return f"v{version.number}"
    return f"{version.judge.name} v{version.number}"


@login_required
@require_GET
def judge_compare(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    judges = list(
        Judge.objects.filter(project=project)
        .select_related("criterion")
        .annotate(latest_number=Max("versions__number"))
        .order_by("criterion__position", "criterion_id", "name")
    )
    context: dict[str, Any] = {"project": project, "access": access, "judges": judges, "splits": JudgeRun.Split.choices}
    if not request.GET:
        # A bare visit: the picker alone, not an error.
        return render(request, "judges/compare.html", context)
    try:
        run_a, run_b = resolve_runs(request, access)
        after = _int_param(request, "after")
    except CompareError as exc:
        context["error"] = str(exc)
        return render(request, "judges/compare.html", context, status=400)
    counts = joined_counts(run_a, run_b)
    both = {key: n for key, n in counts.items() if key[1] in ("pass", "fail") and key[2] in ("pass", "fail")}
    name_a, name_b = _run_name(run_a, run_b), _run_name(run_b, run_a)
    if name_a == name_b:  # the same version twice (two runs of it): tell them apart by run
        name_a, name_b = f"{name_a} (run #{run_a.pk})", f"{name_b} (run #{run_b.pk})"
    bar = promotion_bar(project=project)
    comparison = compare_judges(both, name_a=name_a, name_b=name_b, min_tpr=bar.min_tpr, min_tnr=bar.min_tnr)
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
    page = differing_traces(run_a, run_b, after_trace_id=after, limit=DIFFERENCES_PER_PAGE + 1)
    base = reverse("judge_compare", args=[slug])
    query = {"a": run_a.pk, "b": run_b.pk}
    next_url = None
    if len(page) > DIFFERENCES_PER_PAGE:
        page = page[:DIFFERENCES_PER_PAGE]
        next_url = f"{base}?{urlencode({**query, 'after': page[-1]['trace_id']})}"
    context.update(
        run_a=run_a,
        run_b=run_b,
        name_a=name_a,
        name_b=name_b,
        criterion=run_a.version.judge.criterion,
        comparison=comparison,
        rows=rows,
        excluded=exclusions(counts),
        differences=page,
        next_url=next_url,
        first_url=f"{base}?{urlencode(query)}",
        is_first_page=after is None,
        swap_url=f"{base}?{urlencode({'a': run_b.pk, 'b': run_a.pk})}",
    )
    return render(request, "judges/compare.html", context)
