"""OpenID Connect login against a real provider on loopback (tests/deploy/oidc_provider.py): the app discovers the
endpoints, redirects to the provider, exchanges the code (PKCE), verifies the RS256 id_token against the JWKS, and
signs the person in by verified email. Project roles come only from the expert's invitations."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from django.contrib.auth.models import User
from django.test import Client

from annotation import oidc
from annotation.members import invitation_create
from annotation.models import Invitation, Membership, Role
from tests.deploy.oidc_provider import CLIENT_ID, CLIENT_SECRET, Identity, Provider, start_provider


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    provider = start_provider()
    yield provider
    provider.server.shutdown()
    provider.server.server_close()


@pytest.fixture
def sso(settings, provider: Provider) -> Provider:
    """OIDC switched on as the environment would (issuer + client), endpoints left to discovery."""
    settings.EVALSTUDIO_OIDC_ENABLED = True
    settings.EVALSTUDIO_OIDC_ISSUER = provider.url
    settings.EVALSTUDIO_OIDC_PROVIDER_NAME = "Acme SSO"
    settings.OIDC_RP_CLIENT_ID = CLIENT_ID
    settings.OIDC_RP_CLIENT_SECRET = CLIENT_SECRET
    for name in ("OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_USER_ENDPOINT"):
        setattr(settings, name, "")
    settings.OIDC_OP_JWKS_ENDPOINT = ""
    settings.AUTHENTICATION_BACKENDS = [
        "django.contrib.auth.backends.ModelBackend",
        "annotation.oidc.InvitationOIDCBackend",
    ]
    oidc._discovered.clear()
    provider.identity = None
    provider.signing_key = None
    provider.audience = CLIENT_ID
    provider.requests.clear()
    return provider


def sign_in(client: Client, provider: Provider, identity: Identity) -> str:
    """The whole browser round trip; returns where the app sends the person at the end."""
    provider.identity = identity
    start = client.get("/oidc/authenticate/")
    assert start.status_code == 302
    authorize = start.headers["Location"]
    assert authorize.startswith(f"{provider.url}/authorize?")
    # The browser follows the redirect to the provider, which sends it back to the app with a code.
    back = requests.get(authorize, allow_redirects=False, timeout=5)
    assert back.status_code == 302, back.text
    callback = urlsplit(back.headers["Location"])
    assert callback.path == "/oidc/callback/"
    done = client.get(f"{callback.path}?{callback.query}")
    assert done.status_code == 302
    return done.headers["Location"]


@pytest.mark.django_db
def test_invited_email_signs_in_with_sso_and_gets_exactly_the_invited_role(sso, project, expert):
    invitation_create(project=project, email="Alice@Example.com", role=Role.VIEWER, invited_by=expert)
    client = Client()
    assert sign_in(client, sso, Identity(sub="alice-1", email="alice@example.com")) == "/projects/"
    alice = User.objects.get(email="alice@example.com")
    assert not alice.has_usable_password()
    assert Membership.objects.get(project=project, user=alice).role == Role.VIEWER
    invitation = Invitation.objects.get(project=project, email="alice@example.com")
    assert invitation.accepted_by == alice and invitation.accepted_at is not None
    page = client.get("/projects/")
    assert project.name in page.content.decode()
    assert client.get(f"/projects/{project.slug}/").status_code == 200
    # The whole flow went through the provider's real endpoints, discovery first.
    assert sso.requests[0] == "/.well-known/openid-configuration"
    assert {"/authorize", "/token", "/jwks", "/userinfo"} <= set(sso.requests)


@pytest.mark.django_db
def test_sso_user_without_an_invitation_gets_no_project_and_a_page_that_says_so(sso, project):
    client = Client()
    sign_in(client, sso, Identity(sub="bob-1", email="bob@example.com"))
    bob = User.objects.get(email="bob@example.com")
    assert not Membership.objects.filter(user=bob).exists()
    page = client.get("/projects/").content.decode()
    assert 'id="no-invitation"' in page and "bob@example.com" in page and project.name not in page
    assert client.get(f"/projects/{project.slug}/").status_code == 404


@pytest.mark.django_db
def test_an_existing_account_is_matched_by_verified_email_not_duplicated(sso, project, expert):
    carol = User.objects.create_user("carol", email="carol@example.com", password="pw-for-tests-only")
    invitation_create(project=project, email="carol@example.com", role=Role.ENGINEER, invited_by=expert)
    client = Client()
    sign_in(client, sso, Identity(sub="carol-1", email="CAROL@example.com"))
    assert User.objects.filter(email__iexact="carol@example.com").count() == 1
    assert client.session["_auth_user_id"] == str(carol.pk)
    assert Membership.objects.get(project=project, user=carol).role == Role.ENGINEER


@pytest.mark.django_db
def test_an_unverified_email_is_refused_and_creates_no_account(sso, project, expert):
    invitation_create(project=project, email="mallory@example.com", role=Role.ENGINEER, invited_by=expert)
    client = Client()
    where = sign_in(client, sso, Identity(sub="m-1", email="mallory@example.com", email_verified=False))
    assert where == "/accounts/login/?sso=failed"
    assert not User.objects.filter(email="mallory@example.com").exists()
    assert "_auth_user_id" not in client.session
    assert 'id="sso-failed"' in client.get(where).content.decode()


@pytest.mark.django_db
def test_an_id_token_signed_with_another_key_is_refused(sso, expert):
    sso.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    client = Client()
    assert sign_in(client, sso, Identity(sub="e-1", email="eve@example.com")) == "/accounts/login/?sso=failed"
    assert not User.objects.filter(email="eve@example.com").exists()


@pytest.mark.django_db
def test_an_id_token_issued_to_another_client_is_refused(sso, expert):
    sso.audience = "some-other-app"
    client = Client()
    assert sign_in(client, sso, Identity(sub="e-2", email="eve@example.com")) == "/accounts/login/?sso=failed"
    assert not User.objects.filter(email="eve@example.com").exists()


@pytest.mark.django_db
def test_login_page_offers_the_provider_beside_the_password_form(sso):
    page = Client().get("/accounts/login/").content.decode()
    assert "Sign in with Acme SSO" in page
    assert 'name="password"' in page


@pytest.mark.django_db
def test_password_login_can_be_switched_off_and_then_passwords_are_refused(sso, settings, expert):
    settings.EVALSTUDIO_PASSWORD_LOGIN = False
    settings.AUTHENTICATION_BACKENDS = ["annotation.oidc.InvitationOIDCBackend"]
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with Acme SSO" in page and 'name="password"' not in page
    response = client.post("/accounts/login/", {"username": "expert", "password": "pw-for-tests-only"})
    assert response.status_code == 200  # the form again, with its error: no session
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_without_oidc_settings_there_is_no_sso_button_and_its_routes_are_404():
    client = Client()
    assert "Sign in with" not in client.get("/accounts/login/").content.decode()
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404


@pytest.mark.django_db
def test_password_login_also_accepts_the_pending_invitations_for_the_accounts_email(project, expert):
    dave = User.objects.create_user("dave", email="dave@example.com", password="pw-for-tests-only")
    invitation_create(project=project, email="dave@example.com", role=Role.VIEWER, invited_by=expert)
    client = Client()
    response = client.post("/accounts/login/", {"username": "dave", "password": "pw-for-tests-only"})
    assert response.status_code == 302
    assert Membership.objects.get(project=project, user=dave).role == Role.VIEWER
    assert not Invitation.objects.filter(email="dave@example.com", accepted_at__isnull=True).exists()


@pytest.mark.django_db
def test_an_unreachable_provider_is_a_failed_sign_in_not_a_server_error(sso, settings):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    settings.EVALSTUDIO_OIDC_ISSUER = closed
    settings.OIDC_TIMEOUT = 2
    response = Client().get("/oidc/authenticate/")
    assert (response.status_code, response.headers["Location"]) == (302, "/accounts/login/?sso=failed")
