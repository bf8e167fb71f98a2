"""REST routes for judges, added to the project's API (`/api/v1/…`): a judge run's status, progress and report, its
per-trace judgments beside the expert's labels, and the expert's own reliability (fatigue and drift)."""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.db.models import F, OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema, Status
from pydantic import BaseModel, ConfigDict, ValidationError

from annotation.access import API_AUTH, Permission, ProjectAccess, api_access, api_object
from annotation.api import Error
from annotation.models import Label
from annotation.services import DomainError
from core.api_errors import detail_response
from core.json_input import JsonTooDeep, json_loads
from core.read_query import QueryError, encode_cursor, page_after, page_limit, query_refused, refuse_unknown
from core.validation import problems
from judges.bias import bias_run_enqueue
from judges.guardrails import guardrails_check
from judges.models import BiasRun, JudgeRun, JudgeVersion, Judgment
from judges.promotions import bias_bar
from judges.providers.bias import bias_problems
from judges.reliability import RateRow, drift, fatigue, rater_agreement, self_agreement
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


def _visible_run(request: HttpRequest, run_id: int) -> JudgeRun | HttpResponse:
    """The judge run the caller may see, or the 404 for one they may not (the same as for a missing run)."""
    return api_object(
        request,
        JudgeRun.objects.select_related("version__judge__criterion"),
        run_id,
        Permission.VIEW,
        via="version__judge__project",
        missing=f"No judge run {run_id}",
    )


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
    run = _visible_run(request, run_id)
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
    run = _visible_run(request, run_id)
    if not isinstance(run, JudgeRun):
        return run
    query = request.GET
    try:
        refuse_unknown(query, ("agrees", "cursor", "limit"))
        if agrees not in ("", "yes", "no"):
            raise QueryError(f"Query parameter 'agrees' must be yes or no; got {agrees[:40]!r}")
        limit = page_limit(query)
        after = page_after(query)
    except QueryError as exc:
        return query_refused(exc)
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


# --- the expert's reliability (judges.reliability) -------------------------------------------------------------------


class RateOut(Schema):
    label: str
    n: int
    fails: int
    fail_rate: float | None
    # 95% Wilson interval of the fail rate; null when n is 0.
    fail_rate_ci: list[float] | None
    median_seconds: float | None = None
    # Fatigue rows: how many of these first verdicts were re-reviewed blind, and the share that agreed.
    rereviewed: int = 0
    self_agreement: float | None = None


class DriftOut(Schema):
    criterion: str
    weeks: list[RateOut]
    labels: int
    changed_later: int
    changed_share: float | None
    changed_share_ci: list[float] | None


class MonthOut(Schema):
    month: str  # YYYY-MM, when the re-reviews were made
    n: int
    agreed: int
    agreement_ci: list[float] | None


class SelfAgreementOut(Schema):
    criterion: str
    n: int
    agreement: float | None
    agreement_ci: list[float] | None
    kappa: float | None
    kappa_ci: list[float] | None
    undecided: int
    decided: int
    months: list[MonthOut]


class RaterAgreementOut(Schema):
    rater: str
    criterion: str
    n: int
    agreement: float | None
    agreement_ci: list[float] | None
    kappa: float | None
    kappa_ci: list[float] | None


class ReliabilityOut(Schema):
    project: str
    self_agreement: list[SelfAgreementOut]
    # Calibration raters: each one's blind labels against the expert's, per criterion.
    rater_agreement: list[RaterAgreementOut]
    fatigue: list[RateOut]
    drift: list[DriftOut]


def _rate_out(row: RateRow) -> dict[str, Any]:
    return {
        "label": row.label,
        "n": row.n,
        "fails": row.fails,
        "fail_rate": row.rate,
        "fail_rate_ci": list(row.interval) if row.interval else None,
        "median_seconds": row.median_seconds,
        "rereviewed": row.rereviewed,
        "self_agreement": row.agreement,
    }


@router.get(
    "/projects/{slug}/reliability",
    auth=API_AUTH,
    response={200: ReliabilityOut, 403: Error, 404: Error},
    summary="The expert's reliability: self-agreement, fatigue by position in a sitting, drift per criterion",
    description=(
        "`self_agreement`: per criterion, the expert's labels against their blind re-reviews: raw agreement and "
        "Cohen's κ with 95% intervals, and how many differing pairs are undecided or decided. `rater_agreement`: "
        "per calibration rater and criterion, the rater's blind labels against the expert's, the same numbers. "
        "`fatigue`: the expert's fail rate on first reading by position in a review sitting (buckets `1–20`, "
        "`21–40`, …, `101+`), with its 95% Wilson interval and the median seconds spent on a trace. `drift`: per "
        "criterion, the fail rate by week (`label` is the week's Monday) of first verdicts given in the random "
        "queue (comparable traces), and the share of labels whose verdict was changed later. Only labels made on "
        "the review page carry a sitting and a queue; imported ones count only toward `changed_later`. "
        "docs/expert-reliability.md says how to read each number."
    ),
)
def reliability_get(request: HttpRequest, slug: str) -> dict[str, Any] | HttpResponse:
    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    project = access.project
    return {
        "project": project.slug,
        "self_agreement": [
            {
                "criterion": item.criterion.name,
                "n": item.n,
                "agreement": item.agreement,
                "agreement_ci": list(item.agreement_interval) if item.agreement_interval else None,
                "kappa": item.kappa,
                "kappa_ci": list(item.kappa_interval) if item.kappa_interval else None,
                "undecided": item.undecided_count,
                "decided": item.decided,
                "months": [
                    {"month": month, "n": n, "agreed": agreed, "agreement_ci": list(ci) if ci else None}
                    for month, n, agreed, ci in item.months
                ],
            }
            for item in self_agreement(project=project)
        ],
        "rater_agreement": [
            {
                "rater": row.rater.user.get_username(),
                "criterion": row.criterion.name,
                "n": row.n,
                "agreement": row.agreement,
                "agreement_ci": list(row.agreement_interval) if row.agreement_interval else None,
                "kappa": row.kappa,
                "kappa_ci": list(row.kappa_interval) if row.kappa_interval else None,
            }
            for row in rater_agreement(project=project)
        ],
        "fatigue": [_rate_out(row) for row in fatigue(project=project)],
        "drift": [
            {
                "criterion": item.criterion.name,
                "weeks": [_rate_out(rate) for _, rate in item.weeks],
                "labels": item.labels,
                "changed_later": item.changed_later,
                "changed_share": item.changed_share,
                "changed_share_ci": list(item.changed_interval) if item.changed_interval else None,
            }
            for item in drift(project=project)
        ],
    }


# --- an LLM judge version's bias battery ---------------------------------------------------------------------------


class BiasRunOut(Schema):
    id: int
    project: str
    criterion: str
    judge: str
    version: int
    split: str
    status: str
    error: str
    # Prompts answered (unperturbed and perturbed) of the battery's total; progress is done / total.
    done: int
    total: int
    progress: float
    created_at: str
    started_at: str | None
    finished_at: str | None
    # The project's bias bar now, and whether this battery's flip rates are all at or under it (null until done).
    max_flip_rate: float
    passes: bool | None
    problems: list[str]
    # judges.providers.bias.flip_report plus what the calls cost; null until the battery is done.
    report: dict[str, Any] | None


class BiasRunQueued(Schema):
    id: int
    status: str
    status_url: str


def _bias_run_out(run: BiasRun) -> dict[str, Any]:
    judge = run.version.judge
    max_flip_rate = bias_bar(project=judge.project)
    done = run.status == BiasRun.Status.DONE
    problems = bias_problems(run.report, max_flip_rate=max_flip_rate) if done else []
    return {
        "id": run.pk,
        "project": judge.project.slug,
        "criterion": judge.criterion.name,
        "judge": judge.name,
        "version": run.version.number,
        "split": run.split,
        "status": run.status,
        "error": run.error,
        "done": run.done,
        "total": run.total,
        "progress": 1.0 if run.is_finished or not run.total else min(1.0, run.done / run.total),
        "created_at": run.created_at.isoformat(),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "max_flip_rate": max_flip_rate,
        "passes": (not problems) if done else None,
        "problems": problems,
        "report": run.report if done else None,
    }


@router.post(
    "/judge-versions/{version_id}/bias-runs",
    auth=API_AUTH,
    response={202: BiasRunQueued, 400: Error, 403: Error, 404: Error},
    summary="Start the bias battery of an LLM judge version",
    description=(
        "Queues the version's bias battery for the worker: on the dev split, its verdicts with the few-shot examples "
        "in other orders, with failed outputs padded and passed ones made terse, and with a line saying most "
        "reviewers rated the response passing (or failing), each against its verdict on the unperturbed prompt. "
        "No body. 202 with the battery's `id` and `status_url`; 400 when the version is not an LLM judge's, no LLM "
        "endpoint is configured or the dev split has no labelled traces; 403 for a viewer or an API token (starting "
        "work is for the expert and engineers, like starting a judge run); 404 for a version the caller cannot see."
    ),
)
def bias_run_post(request: HttpRequest, version_id: int) -> Status[dict[str, Any]] | HttpResponse:
    version = api_object(
        request,
        JudgeVersion.objects.select_related("judge__criterion").defer("artifact"),
        version_id,
        Permission.RUN_JUDGES,
        via="judge__project",
        missing=f"No judge version {version_id}",
    )
    if not isinstance(version, JudgeVersion):
        return version
    try:
        run = bias_run_enqueue(version=version, user=request.user if request.user.is_authenticated else None)
    except DomainError as exc:
        return Status(400, {"detail": str(exc)})
    return Status(
        202,
        {"id": run.pk, "status": run.status, "status_url": f"/api/v1/judge-versions/{version_id}/bias-runs/{run.pk}"},
    )


@router.get(
    "/judge-versions/{version_id}/bias-runs/{run_id}",
    auth=API_AUTH,
    response={200: BiasRunOut, 404: Error},
    summary="A bias battery: status, progress and flip rates",
    description=(
        "`report.biases` has `order`, `verbosity` and `bandwagon`, each with `n` (traces measured), `flipped`, "
        "`flip_rate` (null when nothing was measured), `ci` ([low, high], 95% exact), `errors`, `skipped` (why a "
        "bias was not measured, e.g. order for fewer than two few-shot examples), `variants` (the same per "
        "perturbation) and `flips` ({trace, variant, from, to}). `passes` says whether every flip rate is at or "
        "under the project's bias bar `max_flip_rate` (what promotion asks), `problems` why not. 404 for a battery "
        "the caller cannot see or of another version."
    ),
)
def bias_run_get(request: HttpRequest, version_id: int, run_id: int) -> dict[str, Any] | HttpResponse:
    run = api_object(
        request,
        BiasRun.objects.filter(version_id=version_id).select_related("version__judge__criterion"),
        run_id,
        Permission.VIEW,
        via="version__judge__project",
        missing=f"No bias run {run_id} of judge version {version_id}",
    )
    if not isinstance(run, BiasRun):
        return run
    return _bias_run_out(run)


# --- guardrails (judges.guardrails): the project's guardrail-ready checks on one answer, inline ----------------------


class GuardrailRequest(BaseModel):
    """The answer to check. Strict: an output that is not a string is a 400 naming it, never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)

    output: str
    input: str = ""
    # OpenAI chat format, tool calls included: what the tool-call checks read.
    messages: list[Any] | None = None
    # Retrieved passages; accepted for the trace's shape (no assertion check reads them today).
    context: list[str] | None = None


class GuardrailViolation(Schema):
    criterion: str
    check: str
    version: int
    detail: str


class GuardrailResult(Schema):
    allowed: bool
    violations: list[GuardrailViolation]
    # Checks that could not decide on this answer (a pattern ran out of time): listed, never blocking.
    errors: list[GuardrailViolation]
    checks: int


GUARDRAIL_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["output"],
                    "additionalProperties": False,
                    "properties": {
                        "output": {"type": "string"},
                        "input": {"type": "string"},
                        "messages": {"type": "array", "items": {"type": "object"}},
                        "context": {"type": "array", "items": {"type": "string"}},
                    },
                }
            }
        },
    }
}


@router.post(
    "/projects/{slug}/guardrails/check",
    auth=API_AUTH,
    response={200: GuardrailResult, 400: Error, 403: Error, 404: Error, 413: Error, 415: Error},
    summary="Run the project's guardrail-ready checks on one answer",
    description=(
        "Runs every check the expert marked guardrail-ready (docs/guardrails.md) on the answer and says whether it "
        "is `allowed`: false when any check fails it, each failure a violation `{criterion, check, version, "
        "detail}`. A check that cannot decide (its pattern ran out of time) is listed under `errors` and does not "
        "block. With no guardrail-ready check, every answer is allowed (`checks` is 0). The `Server-Timing` header "
        "says how long the checks took (`guardrails;dur=<ms>`)."
    ),
    openapi_extra=GUARDRAIL_BODY_DOC,
)
def guardrails_check_route(request: HttpRequest, response: HttpResponse, slug: str) -> dict[str, Any] | HttpResponse:
    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    content_type = (request.content_type or "").lower()
    if content_type != "application/json":
        return detail_response(415, f"Content-Type {content_type or 'missing'!r}: send application/json")
    limit = settings.EVALSTUDIO_MAX_REQUEST_BYTES
    body = request.read(limit + 1)
    if len(body) > limit:
        return detail_response(413, f"The body is over the limit of {limit:,} bytes")
    try:
        payload = json_loads(body, where="body")
    except JsonTooDeep as exc:
        return detail_response(400, f"The body is {exc}")
    except UnicodeDecodeError as exc:
        return detail_response(400, f"The body is not valid UTF-8 (byte {exc.start + 1})")
    except ValueError as exc:
        return detail_response(400, f"Malformed JSON: {exc}")
    try:
        checked = GuardrailRequest.model_validate(payload)
    except ValidationError as exc:
        unknown = "{key}: not a field of a guardrail check (fields: {keys})"
        return detail_response(400, "; ".join(problems(exc, GuardrailRequest, root="body", unknown=unknown)))
    started = time.perf_counter()
    answer = guardrails_check(
        project_id=access.project.pk, output=checked.output, input=checked.input, messages=checked.messages
    )
    # The guardrails' own share of the request (the query for the marked versions and the checks), for the caller's
    # tracing and bench/guardrails.py: W3C Server-Timing, milliseconds.
    response["Server-Timing"] = f"guardrails;dur={(time.perf_counter() - started) * 1000:.3f}"
    return answer


# --- the loop's cadence, maturity and coverage (docs/expert-reliability.md "The loop's cadence", "Coverage") -------


class LoopSettingsOut(Schema):
    cycle_days: int
    cycle_size: int
    outlier_days: int
    outlier_size: int


class LoopCycleOut(Schema):
    last_at: str | None
    session: str | None
    reviewed: int
    next_due_at: str | None
    due: bool


class LoopOutlierOut(Schema):
    last_at: str | None
    session: str | None
    reviewed: int
    done: bool


class LoopModeOut(Schema):
    id: int
    name: str


class LoopCriterionOut(Schema):
    criterion: str
    status: str


class LoopStaleOut(Schema):
    judge: str
    criterion: str
    version: int
    why: str
    headline: str
    changes: list[str]


class LoopMaturityOut(Schema):
    level: int
    name: str
    next_step: str
    evidence: dict[str, str]


class CoverageModeOut(Schema):
    id: int
    name: str
    trace_count: int
    note_count: int
    share_of_failing_traces: float
    covered: bool
    criteria: list[LoopCriterionOut]


class UnobservedCriterionOut(Schema):
    criterion: str
    status: str
    flag: str


class CoverageOut(Schema):
    modes: list[CoverageModeOut]
    unobserved_criteria: list[UnobservedCriterionOut]
    failing_traces: int
    covered_failing_traces: int
    covered_share: float | None


class LoopOut(Schema):
    project: str
    as_of: str
    settings: LoopSettingsOut
    cycle: LoopCycleOut
    outlier_review: LoopOutlierOut
    new_failure_modes: list[LoopModeOut]
    criteria_without_aligned_judge: list[LoopCriterionOut]
    stale_judges: list[LoopStaleOut]
    maturity: LoopMaturityOut
    coverage: CoverageOut


@router.get(
    "/projects/{slug}/cadence",
    auth=API_AUTH,
    response={200: LoopOut, 403: Error, 404: Error},
    summary="The loop's cadence, the maturity level and the judges' coverage of the failure taxonomy",
    description=(
        "`cycle`: the last error-analysis cycle (a review session with notes and at least `cycle_size` reviewed "
        "traces) and whether the next is due (`cycle_days` after it). `outlier_review`: whether a review of "
        "`outlier_size` outliers (longest traces, rare metadata values) was done in the last `outlier_days`. "
        "`new_failure_modes` since the last cycle; `criteria_without_aligned_judge` with their judge status (`none`, "
        "`below the bar`); `stale_judges`: judge versions built on a definition or labels that changed since. "
        "`maturity`: level 1 manual review, 2 regression suite in CI, 3 production sampling, 4 continuous evaluation "
        "of production traffic, with the next step. `coverage`: per failure mode (most frequent first) the criteria "
        "checking it with their judge status (`none`, `below the bar`, `aligned on dev`, `promoted`, "
        "`guardrail-ready`), the criteria with no observed failure behind them, and the share of failing traces "
        "carrying a mode a promoted judge checks. The weekly digest webhook posts this same object."
    ),
)
def cadence_get(request: HttpRequest, slug: str) -> dict[str, Any] | HttpResponse:
    from judges.loop import loop_facts, loop_payload

    access = api_access(request, slug, Permission.VIEW)
    if not isinstance(access, ProjectAccess):
        return access
    return loop_payload(loop_facts(project=access.project))
