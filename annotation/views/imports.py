# Being written by the ingestion helper; see annotation/urls.py for the routes it serves.
from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def _todo(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    raise NotImplementedError


import_upload = import_detail = _todo
