"""Optional OpenID Connect login (mozilla-django-oidc), on only when EVALSTUDIO_OIDC_* is set (evalstudio/settings.py).

- Endpoints come from the issuer's discovery document (`/.well-known/openid-configuration`, fetched once per process
  with a timeout) unless the operator gives them explicitly.
- A person is matched to an account by a *verified* email (the `email_verified` claim of the signed id_token or of
  the userinfo answer for the same subject); a new account is created for an unknown verified email, with no
  password and no project. Roles come only from the expert's invitations (annotation.members), accepted on login.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import requests
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured, SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from annotation.members import normalize_email

logger = logging.getLogger(__name__)

# Discovery key → mozilla-django-oidc setting it fills when the operator did not set that endpoint explicitly.
_DISCOVERY_KEYS = {
    "authorization_endpoint": "OIDC_OP_AUTHORIZATION_ENDPOINT",
    "token_endpoint": "OIDC_OP_TOKEN_ENDPOINT",
    "userinfo_endpoint": "OIDC_OP_USER_ENDPOINT",
    "jwks_uri": "OIDC_OP_JWKS_ENDPOINT",
}
_discovered: dict[str, dict[str, str]] = {}
_lock = threading.Lock()


def oidc_endpoints() -> dict[str, str]:
    """The provider's endpoints by mozilla-django-oidc setting name: explicit settings win, the rest come from the
    issuer's discovery document. ImproperlyConfigured (with the reason) when discovery fails or is incomplete."""
    explicit = {name: getattr(settings, name, "") or "" for name in _DISCOVERY_KEYS.values()}
    issuer = settings.EVALSTUDIO_OIDC_ISSUER
    if all(explicit.values()) or not issuer:
        return explicit
    with _lock:
        if issuer not in _discovered:
            _discovered[issuer] = _discover(issuer)
    found = _discovered[issuer]
    return {name: explicit[name] or found.get(name, "") for name in _DISCOVERY_KEYS.values()}


def _discover(issuer: str) -> dict[str, str]:
    url = f"{issuer}/.well-known/openid-configuration"
    try:
        response = requests.get(url, timeout=settings.OIDC_TIMEOUT, allow_redirects=False)
        response.raise_for_status()
        document = response.json()
    except (requests.RequestException, ValueError) as exc:
        raise ImproperlyConfigured(f"OpenID Connect discovery failed at {url}: {exc}") from None
    # The issuer in the document must be the one configured (OpenID Connect Discovery 1.0, section 4.3).
    if str(document.get("issuer", "")).rstrip("/") != issuer:
        raise ImproperlyConfigured(f"{url} names issuer {document.get('issuer')!r}, not {issuer!r}")
    missing = [key for key in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(key)]
    if missing:
        raise ImproperlyConfigured(f"{url} lacks {', '.join(missing)}")
    return {setting: str(document.get(key) or "") for key, setting in _DISCOVERY_KEYS.items()}


def _require_enabled() -> None:
    if not settings.EVALSTUDIO_OIDC_ENABLED:
        raise Http404("Single sign-on is not configured on this installation")


class DiscoveryAuthenticationRequestView(OIDCAuthenticationRequestView):
    """Redirects to the provider's authorization endpoint; 404 while OIDC is off."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # The parent reads the endpoint from settings, which may be unset when discovery provides it: fill it per
        # request in get() instead.
        super(OIDCAuthenticationRequestView, self).__init__(*args, **kwargs)

    def get(self, request: HttpRequest) -> HttpResponse:
        _require_enabled()
        try:
            self.OIDC_OP_AUTH_ENDPOINT = oidc_endpoints()["OIDC_OP_AUTHORIZATION_ENDPOINT"]
        except ImproperlyConfigured as exc:
            # The provider is unreachable or misconfigured: the login page says single sign-on failed; the
            # operator finds the reason in the log. Discovery is tried again on the next attempt.
            logger.error("%s", exc)
            return HttpResponseRedirect(settings.LOGIN_REDIRECT_URL_FAILURE)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        return super().get(request)


class InvitationCallbackView(OIDCAuthenticationCallbackView):
    """The provider's redirect back; 404 while OIDC is off. Invitations are accepted by the login signal."""

    def get(self, request: HttpRequest) -> HttpResponse:
        _require_enabled()
        return super().get(request)


class InvitationOIDCBackend(OIDCAuthenticationBackend):
    """Signs in the person with a verified email: the account with that email, or a new one without a password."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Endpoints are resolved lazily (discovery needs the network); see authenticate().
        from django.contrib.auth import get_user_model

        self.UserModel = get_user_model()

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> AbstractBaseUser | None:
        if not settings.EVALSTUDIO_OIDC_ENABLED or request is None or "code" not in request.GET:
            return None  # a password login, or SSO switched off: not this backend's business
        try:
            endpoints = oidc_endpoints()
        except ImproperlyConfigured as exc:
            logger.error("%s", exc)
            return None
        self.OIDC_OP_TOKEN_ENDPOINT = endpoints["OIDC_OP_TOKEN_ENDPOINT"]
        self.OIDC_OP_USER_ENDPOINT = endpoints["OIDC_OP_USER_ENDPOINT"]
        self.OIDC_OP_JWKS_ENDPOINT = endpoints["OIDC_OP_JWKS_ENDPOINT"]
        self.OIDC_RP_CLIENT_ID = settings.OIDC_RP_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_RP_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = settings.OIDC_RP_SIGN_ALGO
        self.OIDC_RP_IDP_SIGN_KEY = None
        try:
            return super().authenticate(request, **kwargs)
        except requests.RequestException as exc:
            # The provider is down or refused the code: a failed login (the login page says so), not a 500.
            logger.warning("OpenID Connect login failed talking to the provider: %s", exc)
            return None
        except SuspiciousOperation as exc:
            # A bad signature, nonce, audience or issuer: refused, and logged for the operator.
            logger.warning("OpenID Connect login refused: %s", exc)
            return None

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The library checks the signature and the nonce; the audience and the issuer are checked here, so a token
        the provider issued to another application, or another provider's token, is refused."""
        payload = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("the id_token was issued to another client (aud)")
        issuer = settings.EVALSTUDIO_OIDC_ISSUER
        if issuer and str(payload.get("iss", "")).rstrip("/") != issuer:
            raise SuspiciousOperation("the id_token comes from another issuer (iss)")
        return payload

    def get_userinfo(self, access_token: str, id_token: str, payload: dict[str, Any]) -> dict[str, Any]:
        """The verified id_token's claims, completed by the userinfo endpoint for the same subject. The signed
        id_token wins where both say something."""
        if not self.OIDC_OP_USER_ENDPOINT:
            return dict(payload)
        userinfo = super().get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            logger.warning("OpenID Connect userinfo is for another subject than the id_token; ignored")
            return dict(payload)
        return {**userinfo, **payload}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        # An unverified email could be anyone's: matching accounts and invitations by it would hand them over.
        verified = claims.get("email_verified") is True or str(claims.get("email_verified")).lower() == "true"
        if not normalize_email(claims.get("email", "")) or not verified:
            logger.warning("OpenID Connect login refused: no verified email in the claims")
            return False
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]):  # type: ignore[no-untyped-def]
        return self.UserModel.objects.filter(email__iexact=normalize_email(claims.get("email", "")))

    def create_user(self, claims: dict[str, Any]) -> AbstractBaseUser:
        email = normalize_email(claims["email"])
        username = email[:150]
        if self.UserModel.objects.filter(username=username).exists():
            # A password account already uses that name with another email: keep both apart.
            username = self.get_username(claims)
        user = self.UserModel.objects.create_user(username, email=email)  # no password: SSO only
        return user
