"""schemathesis against the OpenAPI document of every /api/v1 route, in-process (WSGI), with a valid project token:
over a thousand generated requests, and not one is answered 5xx.

Derandomized (the same cases on every run, so CI is repeatable) and without Hypothesis's example database. Most
cases are aimed at the real project and real run ids (a random slug would only ever meet a 404); the rest keep the
generated path parameters. Failures are collected rather than raised, so every 5xx is listed at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from annotation.services import api_token_create
from evalstudio.wsgi import application
from judges.models import JudgeRun
from suites.models import SuiteRun
from tests.suites.test_evalsuite import criterion, golden_outputs  # noqa: F401 - a promoted judge, 120 labelled traces

pytestmark = pytest.mark.django_db

EXAMPLES_PER_OPERATION = 105  # 10 operations today: over 1,000 cases in all, in under a minute
MIN_CASES = 1000


def _rate_limits_off(django_settings: Any) -> None:
    """Another part of issue 12 limits API requests (EVALSTUDIO_API_RATE_*): a fuzzer is not an abuser. Whatever those
    settings are called, a very large number (or False for a switch) turns them off."""
    for name in dir(django_settings._wrapped):
        if not name.startswith("EVALSTUDIO_API_RATE"):
            continue
        value = getattr(django_settings, name)
        if isinstance(value, bool):
            setattr(django_settings, name, False)
        elif isinstance(value, int | float):
            setattr(django_settings, name, 10**9)


@pytest.fixture
def wsgi_in_the_test_transaction() -> Iterator[None]:
    """Django's WSGI handler closes the database connection around each request (close_old_connections), which in a
    test's transaction closes the test's own connection; Django's test client disconnects it the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def real_ids(client, project, criterion) -> dict[str, Any]:  # noqa: F811 - the imported fixture
    _, token = api_token_create(project=project, name="setup")
    candidates = [{"id": i, "output": o} for i, o in golden_outputs().items()]
    response = client.post(
        "/api/v1/projects/acme/evalsuite",
        {"candidates": candidates, "name": "base"},
        content_type="application/json",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.content
    run = JudgeRun.objects.order_by("pk").first()
    return {"slug": project.slug, "run_id": run.pk, "suite_run_id": SuiteRun.objects.get().pk}


def test_every_api_route_answers_generated_requests_without_a_server_error(
    project, real_ids, settings, wsgi_in_the_test_transaction
):
    _rate_limits_off(settings)
    _, token = api_token_create(project=project, name="fuzz")
    headers = {"Authorization": f"Bearer {token}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    cases: list[str] = []
    failures: list[str] = []
    for operation in operations:
        # Requests that fit the schema and requests that break it (wrong types, missing fields, stray bytes).
        requests = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @given(case=requests, aim=st.integers(min_value=0, max_value=4))
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def call(case: Any, aim: int) -> None:
            if aim < 4:  # most cases go to the real project and runs (Hypothesis favours small numbers)
                for key in case.path_parameters or {}:
                    if key == "slug":
                        case.path_parameters[key] = real_ids["slug"]
                    elif key == "run_id":
                        suite = "suite-runs" in case.operation.path
                        case.path_parameters[key] = real_ids["suite_run_id" if suite else "run_id"]
            response = case.call(headers=headers)
            cases.append(case.operation.label)
            if response.status_code >= 500:
                failures.append(
                    f"{case.method} {case.formatted_path} query={case.query} body={str(case.body)[:200]!r} "
                    f"-> {response.status_code} {response.text[:300]!r}"
                )

        call()

    assert len(cases) >= MIN_CASES, f"only {len(cases)} cases were generated"
    assert not failures, f"{len(failures)} of {len(cases)} cases answered 5xx:\n" + "\n".join(failures[:20])
