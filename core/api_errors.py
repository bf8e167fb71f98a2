"""The API's error answer outside django-ninja's own handlers: `{"detail": ...}` in the bytes and content type that
django-ninja gives its own, so a client reads every refusal the same way whichever layer wrote it."""

from __future__ import annotations

from django.http import JsonResponse


def detail_response(status: int, detail: str, *, headers: dict[str, str] | None = None) -> JsonResponse:
    response = JsonResponse({"detail": detail}, status=status, content_type="application/json; charset=utf-8")
    for name, value in (headers or {}).items():
        response[name] = value
    return response
