"""REST routes for judges, added to the project's API (`/api/v1/…`): a judge run's status, progress and report, and
its per-trace judgments beside the expert's labels."""

from __future__ import annotations

from typing import Any

from django.db.models import F, OuterRef, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import Query, Router, Schema

from annotation.access import API_AUTH, Permission, api_object
from annotation.api import Error
from annotation.api_read import ReadError, decode_cursor, encode_cursor, page_limit
from annotation.models import Label
from judges.models import JudgeRun, Judgment
from judges.selectors import run_judged_count

router = Router(tags=["judges"])


class JudgeRunOut(Schema):
    id: int
    project: str
    criterion: str
    judge: str
    version: int
    split: str
    status: str
    imported_from: str
    error: str
    judged: int
    total: int
    progress: float
    created_at: str
    started_at: str | None
    finished_at: str | None
    # DESIGN.md's alignment report, exactly as stored on the run; null until the run is done.
    report: dict[str, Any] | None


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


@router.get(
    "/judge-runs/{run_id}",
    auth=API_AUTH,
    response={200: JudgeRunOut, 404: Error},
    summary="A judge run: status, progress and alignment report",
    description=(
        "`progress` is the fraction of the run's traces judged so far, in [0, 1] (1 once the run has finished). "
        "`report` has the keys n, tp, fp, tn, fn, tpr, tnr, precision_fail, recall_fail, f1_fail, accuracy, kappa, "
        "ci (each rate → [low, high], 95%), errors, skipped (traces the judge did not judge, e.g. without a "
        "reference; outside the matrix like errors), skipped_reasons (reason → count) and split; a rate with a zero "
        "denominator is null. "
        "404 for a run the caller cannot see (another project's token, or a project the user is not a member of), "
        "the same answer as for a missing run."
    ),
)
def judge_run_get(request: HttpRequest, run_id: int) -> dict[str, Any] | HttpResponse:
    run = api_object(
        request,
        JudgeRun.objects.select_related("version__judge__criterion"),
        run_id,
        Permission.VIEW,
        via="version__judge__project",
        missing=f"No judge run {run_id}",
    )
    if not isinstance(run, JudgeRun):
        return run
    judge = run.version.judge
    judged = run_judged_count(run)
    progress = 1.0 if run.is_finished or not run.total else min(1.0, judged / run.total)
    return {
        "id": run.pk,
        "project": judge.project.slug,
        "criterion": judge.criterion.name,
        "judge": judge.name,
        "version": run.version.number,
        "split": run.split,
        "status": run.status,
        "imported_from": run.imported_from,
        "error": run.error,
        "judged": judged,
        "total": run.total,
        "progress": progress,
        "created_at": run.created_at.isoformat(),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "report": run.report,
    }


class JudgmentOut(Schema):
    trace: str
    verdict: str  # pass | fail; empty when judging failed (see `error`) or was skipped (see `skipped`)
    reasoning: str
    error: str
    # Why the judge did not judge the trace ("no reference"), or "": a skip is neither a verdict nor an error.
    skipped: str = ""
    # The expert's label of the run's criterion on the trace, beside the judge's verdict: null when unlabelled.
    expert_verdict: str | None
    expert_critique: str | None
    agrees: bool | None
    latency_ms: int | None
    prompt_tokens: int | None
    completion_tokens: int | None
    cost_usd: float | None


class JudgmentPage(Schema):
    run: int
    criterion: str
    judgments: list[JudgmentOut]
    next_cursor: str | None


@router.get(
    "/judge-runs/{run_id}/judgments",
    auth=API_AUTH,
    response={200: JudgmentPage, 400: Error, 404: Error},
    summary="A judge run's per-trace verdicts and reasoning beside the expert's labels (cursor-paged)",
    description=(
        "Query: `limit` (1–500, default 100), `cursor` (the previous page's `next_cursor`; null on the last page), "
        "`agrees=yes|no` (only agreements or disagreements with the expert's label). In the order the verdicts "
        "were stored. `expert_verdict`/`expert_critique` are the expert's label of the run's criterion on the trace "
        "(its current label, null when unlabelled). 404 for a run the caller cannot see."
    ),
)
def judge_run_judgments(
    request: HttpRequest,
    run_id: int,
    # Declared for the OpenAPI document; read as strings and checked here, so that a bad value is a 400 naming it.
    limit: str = Query("", description="Judgments per page, 1–500 (default 100)"),
    cursor: str = Query("", description="The previous page's next_cursor"),
    agrees: str = Query("", description="yes | no: only agreements or disagreements with the expert's label"),
) -> dict[str, Any] | HttpResponse:
    run = api_object(
        request,
        JudgeRun.objects.select_related("version__judge__criterion"),
        run_id,
        Permission.VIEW,
        via="version__judge__project",
        missing=f"No judge run {run_id}",
    )
    if not isinstance(run, JudgeRun):
        return run
    query = request.GET
    unknown = sorted(set(query) - {"cursor", "limit", "agrees"})
    try:
        if unknown:
            raise ReadError(f"Unknown query parameter {unknown[0]!r}; expected agrees, cursor and limit")
        if agrees not in ("", "yes", "no"):
            raise ReadError(f"Query parameter 'agrees' must be yes or no; got {agrees[:40]!r}")
        limit = page_limit(query)
        after = decode_cursor(query["cursor"]) if query.get("cursor") else 0
    except ReadError as exc:
        return JsonResponse({"detail": str(exc)}, status=400, content_type="application/json; charset=utf-8")
    criterion = run.version.judge.criterion
    # The expert's label of this criterion, joined in SQL: one query for the page, no lookup per judgment.
    label = Label.objects.filter(trace_id=OuterRef("trace_id"), criterion=criterion)
    judgments = (
        Judgment.objects.filter(run=run, id__gt=after)
        .annotate(
            external_id=F("trace__external_id"),
            expert_verdict=Subquery(label.values("verdict")[:1]),
            expert_critique=Subquery(label.values("critique")[:1]),
        )
        .order_by("id")
    )
    if agrees == "yes":
        judgments = judgments.filter(verdict=F("expert_verdict"))
    elif agrees == "no":
        judgments = judgments.filter(expert_verdict__isnull=False).exclude(verdict=F("expert_verdict"))
    rows = list(judgments[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "run": run.pk,
        "criterion": criterion.name,
        "judgments": [
            {
                "trace": j.external_id,
                "verdict": j.verdict,
                "reasoning": j.reasoning,
                "error": j.error,
                "skipped": j.skipped,
                "expert_verdict": j.expert_verdict,
                "expert_critique": j.expert_critique,
                "agrees": None if j.expert_verdict is None or not j.verdict else j.verdict == j.expert_verdict,
                "latency_ms": j.latency_ms,
                "prompt_tokens": j.prompt_tokens,
                "completion_tokens": j.completion_tokens,
                "cost_usd": j.cost_usd,
            }
            for j in rows
        ],
        "next_cursor": encode_cursor(rows[-1].pk) if more else None,
    }
