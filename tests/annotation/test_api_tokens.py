"""The expert's API tokens page: list (name, created, created by, last used, expires, state), create with the raw
value shown once and an optional expiry, revoke (kept for the record); other roles 403, outsiders 404; and
`create_api_token --expires-in-days`."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from annotation.models import ApiToken, Role
from annotation.services import api_token_create
from tests.factories import add_member, make_project, make_user

pytestmark = pytest.mark.django_db

URL = "/projects/acme/settings/tokens/"
API = "/api/v1/projects/acme/failure-modes"


def api_get(raw: str):
    return Client().get(API, headers={"Authorization": f"Bearer {raw}"})


@pytest.fixture
def viewer_client(project) -> Client:
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def test_the_project_page_links_the_tokens_page_for_the_expert_only(expert_client, teammate_client, project):
    assert f'href="{URL}"' in expert_client.get("/projects/acme/").content.decode()
    assert f'href="{URL}"' not in teammate_client.get("/projects/acme/").content.decode()


def test_only_the_expert_may_see_or_change_tokens(
    client, expert_client, teammate_client, viewer_client, outsider_client, project
):
    token, _ = api_token_create(project=project, name="ci")
    revoke = f"{URL}{token.pk}/revoke/"
    assert expert_client.get(URL).status_code == 200
    for member in (teammate_client, viewer_client):
        assert member.get(URL).status_code == 403
        assert member.post(URL, {"name": "sneaky"}).status_code == 403
        assert member.post(revoke).status_code == 403
    for url in (URL, revoke):
        assert outsider_client.post(url, {"name": "x"}).status_code == 404
        assert client.get(url)["Location"].startswith("/accounts/login/")
    assert list(ApiToken.objects.values_list("name", "revoked_at")) == [("ci", None)]


def test_creating_a_token_shows_it_once_and_it_works_until_it_expires(expert_client, expert, project):
    response = expert_client.post(URL, {"name": "production-app", "expires_in_days": "30"})
    assert (response.status_code, response["Cache-Control"]) == (200, "no-store")
    raw = response.context["raw_token"]
    assert raw.startswith("es_") and raw in response.content.decode()
    token = ApiToken.objects.get()
    assert (token.name, token.created_by, token.token_hash) == ("production-app", expert, ApiToken.hash(raw))
    assert abs(token.expires_at - (timezone.now() + timedelta(days=30))) < timedelta(minutes=1)
    # Shown once: the list afterwards has the token, never its value.
    listing = expert_client.get(URL).content.decode()
    assert "production-app" in listing and raw not in listing
    assert api_get(raw).status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert api_get(raw).status_code == 401
    assert '<td class="token-state">expired' in expert_client.get(URL).content.decode()


def test_a_token_without_expiry_and_the_listing_columns(expert_client, expert, project):
    raw = expert_client.post(URL, {"name": "ci"}).context["raw_token"]
    api_get(raw)
    page = expert_client.get(URL).content.decode()
    row = page[page.index("<td>ci</td>") :]
    row = row[: row.index("</tr>")]
    token = ApiToken.objects.get()
    assert token.expires_at is None and token.last_used_at is not None
    assert f"<td>{token.created_at:%Y-%m-%d %H:%M}</td>" in row
    assert "<td>expert</td>" in row  # created by
    assert f"<td>{token.last_used_at:%Y-%m-%d %H:%M}</td>" in row
    assert '<span class="muted">never</span>' in row  # expires
    assert '<td class="token-state">active' in row


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"name": "  "}, "This field is required."),
        ({"name": "ci", "expires_in_days": "0"}, "Ensure this value is greater than or equal to 1."),
        ({"name": "ci", "expires_in_days": "99999"}, "Ensure this value is less than or equal to 3650."),
        ({"name": "ci", "expires_in_days": "soon"}, "Enter a whole number."),
        ({"name": "x" * 101}, "Ensure this value has at most 100 characters (it has 101)."),
    ],
)
def test_a_bad_form_is_400_naming_the_field_and_creates_nothing(expert_client, project, data, error):
    response = expert_client.post(URL, data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert "raw_token" not in response.context and ApiToken.objects.count() == 0


def test_revoking_keeps_the_token_for_the_record_and_the_api_answers_401(expert_client, expert, project):
    token, raw = api_token_create(project=project, name="ci")
    assert api_get(raw).status_code == 200
    response = expert_client.post(f"{URL}{token.pk}/revoke/")
    assert (response.status_code, response["Location"]) == (302, URL)
    token.refresh_from_db()
    assert (token.state(), token.revoked_by) == (ApiToken.State.REVOKED, expert)
    first_revocation = token.revoked_at
    answer = api_get(raw)
    assert answer.status_code == 401 and answer.json()["detail"].startswith("Token revoked on ")
    # Revoking again changes nothing; the row is still listed with its state and no revoke button.
    expert_client.post(f"{URL}{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at == first_revocation
    page = expert_client.get(URL).content.decode()
    assert '<td class="token-state">revoked' in page and "/revoke/" not in page
    assert expert_client.get(f"{URL}{token.pk}/revoke/").status_code == 405


def test_another_projects_token_cannot_be_revoked_from_here(expert_client, expert, project):
    other_token, _ = api_token_create(project=make_project(slug="other", expert=expert), name="theirs")
    assert expert_client.post(f"{URL}{other_token.pk}/revoke/").status_code == 404
    other_token.refresh_from_db()
    assert other_token.revoked_at is None
    assert "theirs" not in expert_client.get(URL).content.decode()


def test_a_token_name_is_escaped(expert_client, project):
    expert_client.post(URL, {"name": "<script>alert(1)</script>"})
    page = expert_client.get(URL).content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_command_sets_an_expiry_and_refuses_a_bad_one(project):
    out, err = io.StringIO(), io.StringIO()
    call_command(
        "create_api_token", "--project", "acme", "--name", "ci", "--expires-in-days", "7", stdout=out, stderr=err
    )
    token = ApiToken.objects.get()
    assert token.token_hash == ApiToken.hash(out.getvalue().strip())
    assert abs(token.expires_at - (timezone.now() + timedelta(days=7))) < timedelta(minutes=1)
    assert "valid until" in err.getvalue()
    for bad in ("0", "4000"):
        with pytest.raises(CommandError, match=f"--expires-in-days must be between 1 and 3650, got {bad}"):
            call_command("create_api_token", "--project", "acme", "--name", "x", "--expires-in-days", bad)
    assert ApiToken.objects.count() == 1
