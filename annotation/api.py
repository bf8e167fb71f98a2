"""The REST API (django-ninja): `/api/v1/…`, OpenAPI document at `/api/v1/openapi.json`."""

from __future__ import annotations

from ninja import NinjaAPI

api = NinjaAPI(title="EvalStudio API", version="1", urls_namespace="api")
