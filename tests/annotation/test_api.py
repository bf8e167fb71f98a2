"""`POST /api/v1/projects/{slug}/traces`: every answer it can give, and the OpenAPI document."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from annotation.models import ApiToken, Label, Role, Trace
from annotation.services import api_token_create
from tests.factories import add_member, make_project, make_user

pytestmark = pytest.mark.django_db

URL = "/api/v1/projects/acme/traces"


@pytest.fixture
def token(project) -> str:
    _, raw = api_token_create(project=project, name="ci")
    return raw


def post(client: Client, body: object, *, token: str | None = None, content_type: str = "application/json", url=URL):
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # The test client leaves out Content-Type for an empty body; a real client may well send it.
    return client.post(url, data=data, content_type=content_type, headers=headers, CONTENT_TYPE=content_type)


def test_token_upload_of_valid_traces_answers_200(client, project, token):
    traces = [
        {"id": "a", "input": "q", "labels": [{"criterion": "factual", "verdict": "pass"}]},
        {"id": "b", "output": "o"},
    ]
    response = post(client, {"traces": traces}, token=token)
    assert response.status_code == 200
    assert response.json() == {"accepted": 2, "duplicates": 0, "rejected": []}
    assert set(Trace.objects.filter(project=project).values_list("external_id", flat=True)) == {"a", "b"}
    assert Label.objects.get().author == project.expert
    assert ApiToken.objects.get().last_used_at is not None


def test_some_rejected_answers_207_with_index_id_and_reason(client, project, token):
    traces = [{"id": "a", "input": "q"}, {"id": "b", "trial": "two", "input": "q"}, {"id": "a", "input": "q"}]
    response = post(client, {"traces": traces}, token=token)
    assert response.status_code == 207
    assert response.json() == {
        "accepted": 1,
        "duplicates": 1,
        "rejected": [{"index": 1, "id": "b", "error": 'trial: expected an integer, got "two"'}],
    }


def test_resending_is_counted_as_duplicates(client, project, token):
    post(client, {"traces": [{"id": "a", "input": "q"}]}, token=token)
    response = post(client, {"traces": [{"id": "a", "input": "q"}]}, token=token)
    assert (response.status_code, response.json()["duplicates"], response.json()["accepted"]) == (200, 1, 0)


def test_on_conflict_update_updates(client, project, token):
    post(client, {"traces": [{"id": "a", "input": "q"}]}, token=token)
    response = post(client, {"traces": [{"id": "a", "input": "new"}]}, token=token, url=URL + "?on_conflict=update")
    assert response.json() == {"accepted": 1, "duplicates": 0, "rejected": []}
    assert Trace.objects.get(external_id="a").input == "new"


def test_ndjson_body_is_accepted_and_bad_lines_are_reported_by_index(client, project, token):
    body = b'{"id": "a", "input": "q"}\n\n{oops\n{"id": "c", "output": "o"}\n'
    response = post(client, body, token=token, content_type="application/x-ndjson")
    assert response.status_code == 207
    assert response.json()["accepted"] == 2
    assert response.json()["rejected"] == [
        {"index": 1, "id": None, "error": "invalid JSON: Expecting property name enclosed in double quotes at column 2"}
    ]


def test_missing_token_is_401(client, project):
    assert post(client, {"traces": []}).status_code == 401


def test_bad_token_is_401(client, project):
    assert post(client, {"traces": []}, token="es_not-a-real-token").status_code == 401


def test_token_of_another_project_gets_the_answer_of_a_missing_project(client, project, expert):
    other = make_project(slug="other", expert=expert)
    _, raw = api_token_create(project=other, name="ci")
    response = post(client, {"traces": [{"input": "q"}]}, token=raw)
    assert (response.status_code, response.json()) == (404, {"detail": "No such project"})
    assert Trace.objects.count() == 0


def test_unknown_project_is_404(client, token):
    assert post(client, {"traces": []}, token=token, url="/api/v1/projects/nope/traces").status_code == 404


def test_logged_in_member_can_post_with_the_session(teammate_client, project):
    response = post(teammate_client, {"traces": [{"id": "a", "input": "q", "notes": ["odd"]}]})
    assert response.status_code == 200
    assert Trace.objects.get(external_id="a").notes.get().author.username == "teammate"


def test_logged_in_outsider_gets_404(outsider_client, project):
    assert post(outsider_client, {"traces": [{"input": "q"}]}).status_code == 404
    assert Trace.objects.count() == 0


def test_viewer_cannot_add_traces(project):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    assert post(client, {"traces": [{"input": "q"}]}).status_code == 403


def test_session_post_without_csrf_token_is_refused(project, teammate):
    client = Client(enforce_csrf_checks=True)
    client.force_login(teammate)
    response = post(client, {"traces": [{"input": "q"}]})
    assert response.status_code == 403
    assert Trace.objects.count() == 0


def test_body_over_the_limit_is_413(client, project, token, settings):
    settings.EVALSTUDIO_MAX_REQUEST_BYTES = 100
    body = json.dumps({"traces": [{"input": "x" * 200}]})
    response = post(client, body, token=token)
    assert response.status_code == 413
    assert response.json() == {"detail": f"The body is {len(body):,} bytes; the limit is 100 bytes"}


def test_other_content_types_are_415(client, project, token):
    response = post(client, "input=q", token=token, content_type="text/plain")
    assert response.status_code == 415
    assert "application/json or application/x-ndjson" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ("{not json", "Malformed JSON: Expecting property name enclosed in double quotes at column 2"),
        ("", 'The body is empty; send {"traces": [...]} or NDJSON, one trace per line'),
        ('{"trace": []}', 'Expected a JSON object {"traces": [...]}'),
        ('[{"input": "q"}]', 'Expected a JSON object {"traces": [...]}'),
        ('{"traces": {"input": "q"}}', '"traces" must be a list of trace objects'),
        ('{"traces": [], "extra": 1}', "Unknown key 'extra'; expected only {\"traces\": [...]}"),
        ('{"traces": [{"input": NaN}]}', "Malformed JSON: NaN is not valid JSON"),
    ],
)
def test_malformed_bodies_are_400_with_a_clear_message(client, project, token, body, detail):
    response = post(client, body, token=token)
    assert response.status_code == 400
    assert response.json() == {"detail": detail}


def test_invalid_utf8_body_is_400(client, project, token):
    response = post(client, b'{"traces": [{"input": "\xff"}]}', token=token)
    assert response.status_code == 400
    assert response.json()["detail"].startswith("The body is not valid UTF-8")


def test_openapi_document_describes_the_route(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    operation = response.json()["paths"]["/api/v1/projects/{slug}/traces"]["post"]
    assert set(operation["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert {"200", "207", "413", "415"} <= set(operation["responses"])
