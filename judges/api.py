"""REST routes for judges, added to the project's API (`/api/v1/…`): a judge run's status, progress and report."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema

from annotation.access import API_AUTH, Permission, api_object
from annotation.api import Error
from judges.models import JudgeRun
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
        "ci (each rate → [low, high], 95%), errors and split; a rate with a zero denominator is null. "
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
