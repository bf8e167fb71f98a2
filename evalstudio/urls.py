from __future__ import annotations

import logging

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.generic import RedirectView

import annotation.api_read  # noqa: F401 - GET …/traces beside the POST on the API's default router
import suites.api_pairwise  # noqa: F401 - pairwise comparisons, on the suites router
from annotation.api import api
from annotation.langfuse_scores import langfuse_ingestion, langfuse_scores
from annotation.otel.receiver import langfuse_otel_traces, otlp_traces
from evalstudio.health import healthz
from judges.api import router as judges_router
from monitoring.api import router as monitoring_router
from suites.api import router as suites_router

api.add_router("", judges_router)
api.add_router("", suites_router)
api.add_router("", monitoring_router)

logger = logging.getLogger(__name__)
# chaos: while PostgreSQL restarts or fails over, an API client gets a 503 it can act on (JSON, Retry-After) instead
# of the HTML error page; the connection is replaced on the next request (CONN_HEALTH_CHECKS), without a restart.
DATABASE_AWAY_RETRY_AFTER_SECONDS = 5


def _database_away(request: HttpRequest, exc: Exception) -> HttpResponse:
    logger.warning("API request %s %s: the database is away: %s", request.method, request.path, exc)
    detail = "The database is not answering (restarting or unreachable); retry in a few seconds."
    response = api.create_response(request, {"detail": detail}, status=503)
    response["Retry-After"] = str(DATABASE_AWAY_RETRY_AFTER_SECONDS)
    return response


api.add_exception_handler(OperationalError, _database_away)
api.add_exception_handler(InterfaceError, _database_away)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="project_list", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz/", healthz, name="healthz"),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    # OTLP/HTTP: the path exporters append to OTEL_EXPORTER_OTLP_ENDPOINT, and the one the Langfuse SDK posts to.
    path("v1/traces", otlp_traces, name="otlp_traces"),
    path("api/public/otel/v1/traces", langfuse_otel_traces, name="langfuse_otel_traces"),
    path("api/public/scores", langfuse_scores, name="langfuse_scores"),
    path("api/public/ingestion", langfuse_ingestion, name="langfuse_ingestion"),
    path("", include("annotation.urls")),
    path("", include("judges.urls")),
    path("", include("suites.urls")),
    path("", include("monitoring.urls")),
    path("", include("agents.urls")),
]
