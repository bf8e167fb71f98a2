"""A fixed-window rate limit for the API's paths, per bearer token and per client IP, counted in the cache (Redis).

Why a few lines on `cache.incr` and not django-ratelimit: the limit must hold on every API route including ones
added later (a middleware on the path prefix, not a decorator per view), answer `429` with `Retry-After` (the end
of the current window, which django-ratelimit does not expose), count requests with an unknown token against the
client's IP, and let requests through when the cache cannot be reached (an optimisation must not take the API down).

A fixed window lets a client send up to twice the limit across a window boundary; for a limit against abuse that is
fine, and it costs two cache round trips per counted key (no Lua, no sorted sets).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import math
import time
from collections.abc import Callable

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse

from core.api_errors import detail_response
from core.client_ip import client_ip
from core.rates import Rate

logger = logging.getLogger(__name__)


def _bearer(request: HttpRequest) -> str | None:
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        # The Langfuse SDK's OTLP export: the Basic password is the project token, counted like a bearer token.
        try:
            return base64.b64decode(raw.strip(), validate=True).decode("utf-8").partition(":")[2] or None
        except (binascii.Error, UnicodeDecodeError):
            return None
    return raw.strip() or None if scheme.lower() == "bearer" else None


# A down cache is logged at most this often: one line per request would flood the log exactly when it matters.
_LOG_EVERY_SECONDS = 60.0
_last_logged = 0.0


def _count(key: str, period: int) -> int | None:
    """The key's count after this request, or None when the cache cannot be reached (fail open)."""
    global _last_logged
    try:
        try:
            return cache.incr(key)
        except ValueError:  # the window's first request
            if cache.add(key, 1, timeout=period + 1):
                return 1
            return cache.incr(key)  # another request created it in between
    except Exception as exc:  # noqa: BLE001 - any cache failure lets the request through
        now = time.monotonic()
        if now - _last_logged > _LOG_EVERY_SECONDS:
            _last_logged = now
            logger.warning("API rate limit not enforced: the cache is unavailable (%s: %s)", type(exc).__name__, exc)
        return None


# Renders a refusal (request, status, detail, headers) in the protocol a path's clients speak.
RefusalRenderer = Callable[[HttpRequest, int, str, dict[str, str]], HttpResponse]
# Path prefix → its renderer; an app registers one in AppConfig.ready (the OTLP receiver: a google.rpc.Status, as
# the OTLP specification asks of every error). Other paths get the API's JSON `{"detail": ...}`.
_renderers: dict[str, RefusalRenderer] = {}


def register_refusal_renderer(prefix: str, render: RefusalRenderer) -> None:
    """Answer this limit's refusals under `prefix` with `render` (core knows no protocol but the API's JSON)."""
    _renderers[prefix] = render


def _too_many(request: HttpRequest, detail: str, retry_after: int) -> HttpResponse:
    headers = {"Retry-After": str(retry_after)}
    for prefix, render in _renderers.items():
        if request.path_info.startswith(prefix):
            return render(request, 429, detail, headers)
    return detail_response(429, detail, headers=headers)


def api_rate_limited(request: HttpRequest, *, now: float | None = None) -> HttpResponse | None:
    """Count the request against its client IP and, when it carries a bearer token (valid or not: the token is not
    looked up here), against that token. The 429 response when a limit is exceeded, else None."""
    now = time.time() if now is None else now
    checks: list[tuple[str, str, Rate, str]] = []
    per_ip: Rate | None = settings.EVALSTUDIO_API_RATE_PER_IP
    per_token: Rate | None = settings.EVALSTUDIO_API_RATE_PER_TOKEN
    if per_ip is not None:
        checks.append(("ip", client_ip(request), per_ip, "from this address"))
    token = _bearer(request)
    if per_token is not None and token is not None:
        # The token's hash, never the token itself, goes into a cache key.
        ident = hashlib.sha256(token.encode()).hexdigest()
        checks.append(("token", ident, per_token, "with this token"))
    for scope, ident, rate, whose in checks:
        window = int(now // rate.period)
        count = _count(f"ratelimit:api:{scope}:{ident}:{rate.period}:{window}", rate.period)
        if count is not None and count > rate.limit:
            retry_after = max(1, math.ceil((window + 1) * rate.period - now))
            return _too_many(
                request,
                f"Too many API requests {whose}: at most {rate.limit} per {rate.period} s; retry in {retry_after} s",
                retry_after,
            )
    return None


class ApiRateLimitMiddleware:
    """Applies `api_rate_limited` to every request under `/api/v1/`, to the OTLP receiver's paths and to the
    Langfuse SDK's (`/api/public/`), before authentication, so that guesses at tokens are limited like any other
    request (and an exporter that sends too much gets the 429 with Retry-After that OTLP exporters honour)."""

    PREFIXES = ("/api/v1/", "/v1/traces", "/api/public/")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(self.PREFIXES):
            limited = api_rate_limited(request)
            if limited is not None:
                return limited
        return self.get_response(request)
