"""Template context every page may need: which ways of logging in this installation offers."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def login_options(request: HttpRequest) -> dict[str, object]:
    return {
        "oidc_enabled": settings.EVALSTUDIO_OIDC_ENABLED,
        "oidc_provider_name": settings.EVALSTUDIO_OIDC_PROVIDER_NAME,
        "password_login": settings.EVALSTUDIO_PASSWORD_LOGIN,
    }
