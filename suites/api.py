"""REST route for the regression suite, for CI systems that would rather post than run `manage.py evalsuite`."""

from __future__ import annotations

from typing import Annotated, Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from ninja import Router, Schema, Status
from pydantic import BeforeValidator, ConfigDict, Field, ValidationError

from annotation.access import API_AUTH, Permission, ProjectAccess, api_access, api_object
from annotation.api import Error
from annotation.trace_format import loads
from core.json_input import JsonTooDeep, json_depth_check
from core.validation import Expected, problems
from suites.evalsuite import DEFAULT_ALPHA, SuiteInputError, evalsuite_run, records_from_list, suite_run_enqueue
from suites.models import SuiteRun

router = Router(tags=["suites"])


def _id_as_text(value: object) -> object:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class EvalsuiteIn(Schema):
    """Candidate outputs for the golden inputs, and how to judge them."""

    # The candidates themselves are read line by line by the suite, which names each bad one (`line N: …`) as
    # `manage.py evalsuite` does, and checks the ranges (alpha, name) for both.
    model_config = ConfigDict(extra="forbid", strict=True)

    candidates: Annotated[list[Any], Expected('a list of {"id", "output"} objects')] = Field(
        description='One {"id", "output", "messages"?, "metadata"?} per golden trace id.'
    )
    # A run's id may come as a number; runs are looked up by name or id as text.
    baseline: Annotated[str | None, BeforeValidator(_id_as_text), Expected("a run name or id")] = Field(
        None, description="An earlier run's name or id."
    )
    name: str = Field("", description="A label for this run (a release, a commit).")
    include_llm: bool = False
    criteria: Annotated[list[str] | None, Expected("a list of criterion names")] = None
    alpha: float = DEFAULT_ALPHA
    wait: bool | None = Field(
        None,
        description="Judge before answering (200); false: queue for the worker (202). "
        "Default: true, false with include_llm.",
    )


class BadInput(Schema):
    detail: str
    errors: list[str]


EVALSUITE_BODY_DOC: dict[str, Any] = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": EvalsuiteIn.model_json_schema()}}}
}


def _bad(detail: str, errors: list[str] | None = None) -> Status[dict[str, Any]]:
    return Status(400, {"detail": detail, "errors": errors or [detail]})


def _parse_body(request: HttpRequest) -> tuple[EvalsuiteIn | None, Status[dict[str, Any]] | None]:
    limit = settings.EVALSTUDIO_MAX_REQUEST_BYTES
    body = request.read(limit + 1)
    if len(body) > limit:
        return None, Status(413, {"detail": f"The body is over the limit of {limit:,} bytes"})
    if (request.content_type or "").lower() != "application/json":
        return None, Status(415, {"detail": "Send application/json"})
    try:
        payload = loads(body)
        json_depth_check(payload)
    except JsonTooDeep as exc:
        # A member named (`candidates: nested deeper…`), or the body as a whole when the parser gave up.
        message = str(exc)
        return None, _bad(message if ":" in message else f"body: {message}")
    except (ValueError, UnicodeDecodeError) as exc:
        return None, _bad(f"Malformed JSON: {exc}")
    try:
        return EvalsuiteIn.model_validate(payload), None
    except ValidationError as exc:
        errors = problems(exc, EvalsuiteIn, root="body", unknown="unknown key {key!r} (keys: {keys})")
        return None, _bad(errors[0], errors)


class QueuedOut(Schema):
    run_id: int
    status: str
    status_url: str


class SuiteRunOut(Schema):
    run_id: int
    project: str
    name: str
    status: str
    error: str
    exit_code: int | None
    created_at: str
    finished_at: str | None
    # The `evalsuite --json` object once the run is done; null before.
    result: dict[str, Any] | None


@router.post(
    "/projects/{slug}/evalsuite",
    auth=API_AUTH,
    response={200: dict[str, Any], 202: QueuedOut, 400: BadInput, 403: Error, 404: Error, 413: Error, 415: Error},
    summary="Run the regression suite on candidate outputs for the golden inputs",
    description=(
        "The same as `manage.py evalsuite`: judges each candidate with its criterion's promoted assertion and "
        "classifier judges (LLM judges too with `include_llm`), compares with the baseline (an earlier run's name "
        "or id; by default the golden traces' own outputs) and stores the run. 200 with the result (the keys of "
        "`evalsuite --json`, `exit_code` 0 when every criterion passes, 1 when one regressed, fell under its "
        "threshold or had judge errors). With `wait: false` (the default with `include_llm`, whose judges may "
        "take longer than a web request may last) the run goes to the worker: 202 with `run_id` and "
        "`status_url` (`GET /api/v1/suite-runs/{id}`). 400 on bad input, with every problem in `errors` "
        "(`line N: reason`, N being the 1-based position in `candidates`); nothing is stored then."
    ),
    openapi_extra=EVALSUITE_BODY_DOC,
)
def evalsuite_post(request: HttpRequest, slug: str) -> Status[dict[str, Any]] | HttpResponse:
    access = api_access(request, slug, Permission.RUN_SUITE)
    if not isinstance(access, ProjectAccess):
        return access
    payload, problem = _parse_body(request)
    if problem is not None:
        return problem
    assert payload is not None
    options: dict[str, Any] = {
        "project": access.project,
        "records": records_from_list(payload.candidates),
        "baseline": payload.baseline,
        "name": payload.name,
        "include_llm": payload.include_llm,
        "criteria": payload.criteria,
        "alpha": payload.alpha,
        "candidates_file": "api",
        "user": access.user,
    }
    try:
        if payload.wait if payload.wait is not None else not payload.include_llm:
            return Status(200, evalsuite_run(**options).result)
        run = suite_run_enqueue(**options)
    except SuiteInputError as exc:
        return _bad(exc.errors[0], exc.errors)
    return Status(202, {"run_id": run.pk, "status": run.status, "status_url": f"/api/v1/suite-runs/{run.pk}"})


@router.get(
    "/suite-runs/{run_id}",
    auth=API_AUTH,
    response={200: SuiteRunOut, 404: Error},
    summary="A suite run: status and, once done, its result",
    description=(
        "`status` is queued, running, done or failed (`error` says why). `result` is the `evalsuite --json` "
        "object once done, with `exit_code` 0 or 1. 404 for a run the caller cannot see."
    ),
)
def suite_run_get(request: HttpRequest, run_id: int) -> Status[dict[str, Any]] | HttpResponse:
    run = api_object(request, SuiteRun.objects, run_id, Permission.VIEW, missing=f"No suite run {run_id}")
    if not isinstance(run, SuiteRun):
        return run
    done = run.status == SuiteRun.Status.DONE
    return Status(
        200,
        {
            "run_id": run.pk,
            "project": run.project.slug,
            "name": run.name,
            "status": run.status,
            "error": run.error,
            "exit_code": run.exit_code,
            "created_at": run.created_at.isoformat(),
            "finished_at": None if run.finished_at is None else run.finished_at.isoformat(),
            "result": run.summary if done else None,
        },
    )
