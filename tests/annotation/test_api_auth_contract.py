"""The API's authentication contract on every route of the OpenAPI document, so a new route cannot escape it:
401 with `WWW-Authenticate: Bearer` (RFC 6750) and a detail saying what was wrong for a missing, malformed, unknown,
expired or revoked token; a member's session keeps its CSRF check on unsafe methods; another project's token gets
the answer of a missing project whatever the slug."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

import evalstudio.urls  # noqa: F401 - mounts the judges and suites routers on `api`
from annotation.access import INVALID_TOKEN, MALFORMED_HEADER, MISSING_CREDENTIALS
from annotation.api import api
from annotation.models import ApiToken, Trace
from annotation.services import api_token_create, api_token_revoke
from tests.factories import make_project, make_user

pytestmark = pytest.mark.django_db

SAFE = {"GET", "HEAD", "OPTIONS"}


def _routes() -> Iterator[tuple[str, str]]:
    for path, operations in api.get_openapi_schema()["paths"].items():
        for method in operations:
            yield method.upper(), path


ROUTES = sorted(_routes())


def _url(path: str, slug: str = "acme") -> str:
    # Every path parameter is a slug or an id: "1" satisfies both converters, the slug is the one asked for.
    return re.sub(r"\{[^}]+\}", "1", path.replace("{slug}", slug))


def call(client: Client, method: str, path: str, *, token: str | None = None, header: str | None = None, slug="acme"):
    headers = {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if header is not None:
        headers["Authorization"] = header
    return client.generic(method, _url(path, slug), data=b"{}", content_type="application/json", headers=headers)


def test_the_walk_covers_every_route_of_the_three_routers():
    paths = {path for _, path in ROUTES}
    assert "/api/v1/projects/{slug}/traces" in paths  # annotation
    assert "/api/v1/judge-runs/{run_id}" in paths  # judges
    assert "/api/v1/projects/{slug}/evalsuite" in paths  # suites
    assert len(ROUTES) >= 10


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_documents_the_bearer_token_and_the_session(method, path):
    operation = api.get_openapi_schema()["paths"][path][method.lower()]
    assert operation["security"] == [{"BearerToken": []}, {"SessionAuth": []}]


@pytest.fixture
def tokens(project) -> dict[str, str]:
    """A token of each state for the project: active, expired (an hour ago) and revoked."""
    _, active = api_token_create(project=project, name="active")
    expired_token, expired = api_token_create(project=project, name="expired", expires_at=timezone.now() + timedelta(1))
    ApiToken.objects.filter(pk=expired_token.pk).update(expires_at=timezone.now() - timedelta(hours=1))
    revoked_token, revoked = api_token_create(project=project, name="revoked")
    api_token_revoke(token=revoked_token, user=None)
    return {"active": active, "expired": expired, "revoked": revoked}


def _assert_401(response, detail_start: str, *, token_sent: bool) -> None:
    challenge = 'Bearer realm="api", error="invalid_token"' if token_sent else 'Bearer realm="api"'
    assert (response.status_code, response["WWW-Authenticate"]) == (401, challenge)
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"].startswith(detail_start), response.json()


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_no_credentials_is_401_with_the_bearer_challenge(client, project, method, path):
    # A POST too: before, the session's CSRF check answered it 403 "CSRF check Failed".
    _assert_401(call(client, method, path), MISSING_CREDENTIALS, token_sent=False)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_bad_expired_revoked_or_malformed_token_is_401_invalid_token_saying_which(
    client, project, tokens, method, path
):
    _assert_401(call(client, method, path, token="es_not-a-real-token"), INVALID_TOKEN, token_sent=True)
    _assert_401(call(client, method, path, token=tokens["expired"]), "Token expired on ", token_sent=True)
    _assert_401(call(client, method, path, token=tokens["revoked"]), "Token revoked on ", token_sent=True)
    _assert_401(call(client, method, path, header=f"Basic {tokens['active']}"), MALFORMED_HEADER, token_sent=True)
    _assert_401(call(client, method, path, header="Bearer "), MALFORMED_HEADER, token_sent=True)


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_a_bad_token_is_401_even_with_a_members_session(teammate_client, project, method, path):
    # A wrong token is never silently replaced by the session: the client meant the token.
    _assert_401(call(teammate_client, method, path, token="es_wrong"), INVALID_TOKEN, token_sent=True)


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p in ROUTES if m == "GET"])
def test_another_authorization_scheme_leaves_a_members_session_working(teammate_client, project, method, path):
    # A proxy in front with HTTP Basic auth makes the browser send `Authorization: Basic` on every request.
    response = call(teammate_client, method, path, header="Basic dXNlcjpwYXNz")
    assert response.status_code not in (401, 403), response.content[:200]


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p in ROUTES if m not in SAFE])
def test_a_members_session_post_without_the_csrf_token_is_403(project, teammate, method, path):
    client = Client(enforce_csrf_checks=True)
    client.force_login(teammate)
    response = call(client, method, path)
    assert (response.status_code, response.json()) == (403, {"detail": "CSRF check Failed"})
    assert Trace.objects.count() == 0


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p in ROUTES if "{slug}" in p])
def test_another_projects_token_gets_one_answer_for_a_real_and_a_missing_slug(client, project, method, path):
    _, other = api_token_create(project=make_project(slug="other", expert=make_user("other-expert")), name="ci")
    real = call(client, method, path, token=other, slug="acme")
    missing = call(client, method, path, token=other, slug="no-such-project")
    assert (real.status_code, real.content) == (missing.status_code, missing.content)
    assert (real.status_code, real.json()) == (404, {"detail": "No such project"})


@pytest.mark.parametrize(("method", "path"), [(m, p) for m, p in ROUTES if "{slug}" in p])
def test_the_projects_own_active_token_gets_past_authentication(client, project, tokens, method, path):
    response = call(client, method, path, token=tokens["active"])
    assert response.status_code not in (401, 404), (response.status_code, response.content[:200])


def test_a_token_expires_at_its_time_and_says_so(client, project):
    token, raw = api_token_create(project=project, name="ci", expires_at=timezone.now() + timedelta(days=1))
    url = "/api/v1/projects/acme/failure-modes"
    assert client.get(url, headers={"Authorization": f"Bearer {raw}"}).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = client.get(url, headers={"Authorization": f"Bearer {raw}"})
    _assert_401(response, "Token expired on ", token_sent=True)


def test_a_valid_token_without_the_right_is_403(client, project, tokens):
    # Tokens may read and add traces but not label: a token of the project with a missing right is a 403, not 401.
    from annotation.access import TOKEN_DENIED, Permission, api_access

    request = type("R", (), {"auth": ApiToken.objects.get(name="active")})()
    response = api_access(request, "acme", Permission.LABEL)
    assert (response.status_code, response.content) == (403, b'{"detail": "' + TOKEN_DENIED.encode() + b'"}')


def test_the_docs_page_needs_a_login_and_the_schema_stays_public(client, expert_client):
    response = client.get("/api/v1/docs")
    assert (response.status_code, response["Location"]) == (302, "/accounts/login/?next=/api/v1/docs")
    assert expert_client.get("/api/v1/docs").status_code == 200
    schema = client.get("/api/v1/openapi.json")
    assert (schema.status_code, schema.json()["info"]["title"]) == (200, "EvalStudio API")
