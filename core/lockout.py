"""The page a locked-out login gets (django-axes' AXES_LOCKOUT_CALLABLE): who is locked, why and until when."""

from __future__ import annotations

from typing import Any

from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

TEMPLATE = "registration/locked_out.html"


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None = None, credentials: dict[str, Any] | None = None
) -> HttpResponse:
    cool_off = get_cool_off(request)
    # Every attempt during the lock starts the cool-off again (axes' default), so it ends one cool-off from now.
    context = {
        "failure_limit": get_failure_limit(request, credentials),
        "username": get_client_username(request, credentials) or "",
        "cooloff_minutes": None if cool_off is None else round(cool_off.total_seconds() / 60),
        "unlocks_at": None if cool_off is None else timezone.now() + cool_off,
    }
    # 429 like axes' own answer: the request is refused for its rate, not for who sent it.
    return render(request, TEMPLATE, context, status=429)
