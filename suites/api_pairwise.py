"""REST routes for pairwise release comparisons (suites.pairwise): start one on the worker, read it back.

Registered on the suites router (suites.api), imported by evalstudio.urls.
"""

from __future__ import annotations

from typing import Annotated, Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Schema, Status
from pydantic import ConfigDict, Field, ValidationError

from annotation.access import API_AUTH, Permission, ProjectAccess, api_access, api_object
from annotation.api import Error
from annotation.models import Criterion
from annotation.trace_format import loads
from core.json_input import JsonTooDeep, json_depth_check
from core.validation import Expected, problems
from suites.api import BadInput, router
from suites.models import PairwiseComparison, SuiteRun
from suites.pairwise import (
    PairwiseInputError,
    pairwise_comparison_enqueue,
    pairwise_disagreements,
    pairwise_version_for,
)

# Pairs whose orders disagreed listed in a GET; the counts cover them all.
DISAGREED_LISTED = 500


class PairwiseIn(Schema):
    """Two suite runs of the project and the criterion to compare them on."""

    model_config = ConfigDict(extra="forbid", strict=True)

    baseline_run: Annotated[int, Expected("a suite run id")] = Field(description="The suite run compared against.")
    candidate_run: Annotated[int, Expected("a suite run id")] = Field(description="The suite run being compared.")
    criterion: Annotated[str, Expected("a criterion name")] = Field(description="The criterion to compare on.")
    judge: Annotated[str | None, Expected("an LLM judge's name")] = Field(
        None, description="The LLM judge to ask; default: the criterion's promoted one, else its newest LLM judge."
    )
    version: Annotated[int | None, Expected("a version number")] = Field(
        None, description="The judge's version; default: its newest."
    )


class PairwiseQueuedOut(Schema):
    id: int
    status: str
    pairs_total: int
    status_url: str


class DisagreedPairOut(Schema):
    id: str  # the golden trace's id
    outcome: str  # inconsistent, or error
    baseline_first: str  # the answer with the baseline's output shown as A: "A", "B", "tie", "" (error)
    candidate_first: str
    error: str


class PairwiseOut(Schema):
    id: int
    project: str
    status: str
    error: str
    criterion: str
    judge: str
    version: int
    baseline_run: int
    candidate_run: int
    pairs_total: int
    pairs_done: int
    created_at: str
    finished_at: str | None
    # Once done: wins per run, ties, inconsistent, errors, judged, disagreement_rate and disagreement_ci, cost.
    result: dict[str, Any] | None
    disagreed: list[DisagreedPairOut]
    disagreed_capped: bool


PAIRWISE_BODY_DOC: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": PairwiseIn.model_json_schema()}}}
}


def _bad(detail: str, errors: list[str] | None = None) -> Status[dict[str, Any]]:
    return Status(400, {"detail": detail, "errors": errors or [detail]})


def _parse(request: HttpRequest) -> PairwiseIn | Status[dict[str, Any]]:
    limit = settings.EVALSTUDIO_MAX_REQUEST_BYTES
    body = request.read(limit + 1)
    if len(body) > limit:
        return Status(413, {"detail": f"The body is over the limit of {limit:,} bytes"})
    if (request.content_type or "").lower() != "application/json":
        return Status(415, {"detail": "Send application/json"})
    try:
        payload = loads(body)
        json_depth_check(payload)
    except JsonTooDeep as exc:
        return _bad(f"body: {exc}")
    except (ValueError, UnicodeDecodeError) as exc:
        return _bad(f"Malformed JSON: {exc}")
    try:
        return PairwiseIn.model_validate(payload)
    except ValidationError as exc:
        errors = problems(exc, PairwiseIn, root="body", unknown="unknown key {key!r} (keys: {keys})")
        return _bad(errors[0], errors)


@router.post(
    "/projects/{slug}/pairwise-comparisons",
    auth=API_AUTH,
    response={202: PairwiseQueuedOut, 400: BadInput, 403: Error, 404: Error, 413: Error, 415: Error},
    summary="Compare two suite runs pair by pair with an LLM judge, each pair judged in both orders",
    description=(
        "For each golden case both runs answered, the LLM judge says which output better meets the criterion, "
        "asked with the baseline's output shown first and again with the candidate's shown first; a preference "
        "counts only when both orders agree. Runs on the worker: 202 with `id` and `status_url` "
        "(`GET /api/v1/pairwise-comparisons/{id}`). 400 naming the field for an unknown run or criterion, the same "
        "run twice, a judge that is not an LLM judge, or runs with no case in common; nothing is stored then."
    ),
    openapi_extra=PAIRWISE_BODY_DOC,
)
def pairwise_post(request: HttpRequest, slug: str) -> Status[dict[str, Any]] | HttpResponse:
    access = api_access(request, slug, Permission.RUN_SUITE)
    if not isinstance(access, ProjectAccess):
        return access
    payload = _parse(request)
    if not isinstance(payload, PairwiseIn):
        return payload
    project = access.project
    runs = {
        r.pk: r for r in SuiteRun.objects.filter(project=project, pk__in=[payload.baseline_run, payload.candidate_run])
    }
    errors = [
        f"{field}: suite run {run_id} is not a suite run of {project.slug!r}"
        for field, run_id in (("baseline_run", payload.baseline_run), ("candidate_run", payload.candidate_run))
        if run_id not in runs
    ]
    criterion = Criterion.objects.filter(project=project, name=payload.criterion).first()
    if criterion is None:
        errors.append(f"criterion: no criterion {payload.criterion!r} in {project.slug!r}")
    if errors:
        return _bad(errors[0], errors)
    try:
        version = pairwise_version_for(criterion=criterion, judge=payload.judge, version=payload.version)
        comparison = pairwise_comparison_enqueue(
            project=project,
            baseline=runs[payload.baseline_run],
            candidate=runs[payload.candidate_run],
            criterion=criterion,
            version=version,
            user=access.user,
        )
    except PairwiseInputError as exc:
        return _bad(str(exc))
    return Status(
        202,
        {
            "id": comparison.pk,
            "status": comparison.status,
            "pairs_total": comparison.pairs_total,
            "status_url": f"/api/v1/pairwise-comparisons/{comparison.pk}",
        },
    )


@router.get(
    "/pairwise-comparisons/{comparison_id}",
    auth=API_AUTH,
    response={200: PairwiseOut, 404: Error},
    summary="A pairwise comparison: status, progress and, once done, its tally and the pairs whose orders disagreed",
    description=(
        "`status` is queued, running, done or failed (`error` says why). `result`, once done: `candidate_wins`, "
        "`baseline_wins`, `ties`, `inconsistent` (the two orders disagreed), `errors` (no well-formed answer after "
        "the retries: never guessed), `judged` (pairs answered in both orders), `disagreement_rate` "
        "(inconsistent / judged) with its 95% exact interval `disagreement_ci`, `first_shown_both` (inconsistent "
        f"pairs where the response shown first won both times). `disagreed` lists up to {DISAGREED_LISTED} "
        "inconsistent pairs, then errors. 404 for a comparison the caller cannot see."
    ),
)
def pairwise_get(request: HttpRequest, comparison_id: int) -> Status[dict[str, Any]] | HttpResponse:
    comparison = api_object(
        request,
        PairwiseComparison.objects.select_related("criterion", "judge_version__judge"),
        comparison_id,
        Permission.VIEW,
        missing=f"No pairwise comparison {comparison_id}",
    )
    if not isinstance(comparison, PairwiseComparison):
        return comparison
    rows = list(pairwise_disagreements(comparison=comparison)[: DISAGREED_LISTED + 1])
    done = comparison.status == PairwiseComparison.Status.DONE
    return Status(
        200,
        {
            "id": comparison.pk,
            "project": comparison.project.slug,
            "status": comparison.status,
            "error": comparison.error,
            "criterion": comparison.criterion.name,
            "judge": comparison.judge_version.judge.name,
            "version": comparison.judge_version.number,
            "baseline_run": comparison.baseline_id,
            "candidate_run": comparison.candidate_id,
            "pairs_total": comparison.pairs_total,
            "pairs_done": comparison.pairs_done,
            "created_at": comparison.created_at.isoformat(),
            "finished_at": None if comparison.finished_at is None else comparison.finished_at.isoformat(),
            "result": comparison.summary if done else None,
            "disagreed": [
                {
                    "id": row.trace.external_id,
                    "outcome": row.outcome,
                    "baseline_first": row.baseline_first,
                    "candidate_first": row.candidate_first,
                    "error": row.error,
                }
                for row in rows[:DISAGREED_LISTED]
            ],
            "disagreed_capped": len(rows) > DISAGREED_LISTED,
        },
    )
