"""REST route for the regression suite, for CI systems that would rather post than run `manage.py evalsuite`."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.http import HttpRequest
from ninja import Router, Schema, Status

from annotation.api import AUTH, Error
from annotation.models import ApiToken, Project, Role
from annotation.selectors import project_role
from annotation.trace_format import loads
from suites.evalsuite import DEFAULT_ALPHA, SuiteInputError, evalsuite_run, records_from_list, suite_run_enqueue
from suites.models import SuiteRun

router = Router(tags=["suites"])

BODY_KEYS = ("candidates", "baseline", "name", "include_llm", "criteria", "alpha", "wait")


class BadInput(Schema):
    detail: str
    errors: list[str]


EVALSUITE_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["candidates"],
                    "properties": {
                        "candidates": {
                            "type": "array",
                            "description": 'One {"id", "output", "messages"?, "metadata"?} per golden trace id.',
                            "items": {"type": "object"},
                        },
                        "baseline": {"type": "string", "description": "An earlier run's name or id."},
                        "name": {"type": "string", "description": "A label for this run (a release, a commit)."},
                        "include_llm": {"type": "boolean", "default": False},
                        "criteria": {"type": "array", "items": {"type": "string"}},
                        "alpha": {"type": "number", "default": DEFAULT_ALPHA},
                        "wait": {
                            "type": "boolean",
                            "description": "Judge before answering (200); false: queue for the worker (202). "
                            "Default: true, false with include_llm.",
                        },
                    },
                }
            }
        },
    }
}


def _bad(detail: str, errors: list[str] | None = None) -> Status[dict[str, Any]]:
    return Status(400, {"detail": detail, "errors": errors or [detail]})


def _parse_body(request: HttpRequest) -> tuple[dict[str, Any] | None, Status[dict[str, Any]] | None]:
    limit = settings.EVALSTUDIO_MAX_REQUEST_BYTES
    body = request.read(limit + 1)
    if len(body) > limit:
        return None, Status(413, {"detail": f"The body is over the limit of {limit:,} bytes"})
    if (request.content_type or "").lower() != "application/json":
        return None, Status(415, {"detail": "Send application/json"})
    try:
        payload = loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return None, _bad(f"Malformed JSON: {exc}")
    if not isinstance(payload, dict):
        return None, _bad('Expected a JSON object {"candidates": [...]}')
    problems = [f"unknown key {key!r} (keys: {', '.join(BODY_KEYS)})" for key in sorted(set(payload) - set(BODY_KEYS))]
    if not isinstance(payload.get("candidates"), list):
        problems.append('candidates: expected a list of {"id", "output"} objects')
    baseline = payload.get("baseline")
    if isinstance(baseline, int) and not isinstance(baseline, bool):
        payload["baseline"] = str(baseline)
    elif baseline is not None and not isinstance(baseline, str):
        problems.append("baseline: expected a run name or id")
    if not isinstance(payload.get("name", ""), str):
        problems.append("name: expected a string")
    if not isinstance(payload.get("include_llm", False), bool):
        problems.append("include_llm: expected true or false")
    if not isinstance(payload.get("wait", True), bool):
        problems.append("wait: expected true or false")
    criteria = payload.get("criteria")
    if criteria is not None and not (isinstance(criteria, list) and all(isinstance(c, str) for c in criteria)):
        problems.append("criteria: expected a list of criterion names")
    alpha = payload.get("alpha", DEFAULT_ALPHA)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float):
        problems.append("alpha: expected a number")
    if problems:
        return None, _bad(problems[0], problems)
    return payload, None


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


def _denied(request: HttpRequest, project: Project, *, run: bool) -> Status[dict[str, Any]] | None:
    """None when the caller may see (or, with `run`, start) suite runs of the project, else the error response."""
    auth = request.auth  # type: ignore[attr-defined]
    if isinstance(auth, ApiToken):
        if auth.project_id == project.pk:
            return None
        if run:
            return Status(403, {"detail": "This token belongs to another project"})
        return Status(404, {"detail": "No such suite run"})  # another project's runs are not even there
    role = project_role(project=project, user=auth)
    if role is None:
        return Status(404, {"detail": "No such project" if run else "No such suite run"})
    if run and role not in {Role.EXPERT, Role.ENGINEER}:
        return Status(403, {"detail": "Viewers cannot run the suite; ask the project's expert for the engineer role"})
    return None


@router.post(
    "/projects/{slug}/evalsuite",
    auth=AUTH,
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
def evalsuite_post(request: HttpRequest, slug: str) -> Status[dict[str, Any]]:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        return Status(404, {"detail": "No such project"})
    denied = _denied(request, project, run=True)
    if denied is not None:
        return denied
    payload, problem = _parse_body(request)
    if problem is not None:
        return problem
    assert payload is not None
    auth = request.auth  # type: ignore[attr-defined]
    include_llm = payload.get("include_llm", False)
    options: dict[str, Any] = {
        "project": project,
        "records": records_from_list(payload["candidates"]),
        "baseline": payload.get("baseline"),
        "name": payload.get("name", ""),
        "include_llm": include_llm,
        "criteria": payload.get("criteria"),
        "alpha": float(payload.get("alpha", DEFAULT_ALPHA)),
        "candidates_file": "api",
        "user": auth if isinstance(auth, AbstractBaseUser) else None,
    }
    try:
        if payload.get("wait", not include_llm):
            return Status(200, evalsuite_run(**options).result)
        run = suite_run_enqueue(**options)
    except SuiteInputError as exc:
        return _bad(exc.errors[0], exc.errors)
    return Status(202, {"run_id": run.pk, "status": run.status, "status_url": f"/api/v1/suite-runs/{run.pk}"})


@router.get(
    "/suite-runs/{run_id}",
    auth=AUTH,
    response={200: SuiteRunOut, 404: Error},
    summary="A suite run: status and, once done, its result",
    description=(
        "`status` is queued, running, done or failed (`error` says why). `result` is the `evalsuite --json` "
        "object once done, with `exit_code` 0 or 1. 404 for a run the caller cannot see."
    ),
)
def suite_run_get(request: HttpRequest, run_id: int) -> Status[dict[str, Any]]:
    run = SuiteRun.objects.select_related("project").filter(pk=run_id).first()
    if run is None or _denied(request, run.project, run=False) is not None:
        return Status(404, {"detail": f"No suite run {run_id}"})
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
