"""A net under every view: a request whose path or query string holds a NUL character is answered 400.

PostgreSQL refuses NUL (U+0000) in text, so a NUL reaching a lookup (`/traces/a%00b/`, `?source=%00`) was a
DataError and a 500 wherever a view filtered on it. No URL of EvalStudio ever needs one; refusing them here, before
sessions or the database are touched, covers every page and API route at once. Text in request bodies is checked
where it is parsed (forms, services, ingestion), which names the field.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from core.validation import nul_message


def _nul_problem(request: HttpRequest) -> str | None:
    if "\x00" in request.path_info:
        return nul_message("path")
    for key, values in request.GET.lists():
        if "\x00" in key:
            return nul_message("query parameter name")
        if any("\x00" in value for value in values):
            return nul_message(f"query parameter {key}")
    return None


class RefuseNulMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Cheap in the common case: one scan of the raw query string and the path before anything is decoded.
        raw_query = request.META.get("QUERY_STRING", "")
        if "\x00" in request.path_info or "%00" in raw_query or "\x00" in raw_query:
            problem = _nul_problem(request)
            if problem is not None:
                if request.path_info.startswith("/api/"):
                    return JsonResponse({"detail": problem}, status=400)
                return HttpResponse(problem, status=400, content_type="text/plain; charset=utf-8")
        return self.get_response(request)
