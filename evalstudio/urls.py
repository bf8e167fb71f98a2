from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView

from annotation.api import api
from evalstudio.health import healthz
from judges.api import router as judges_router
from suites.api import router as suites_router

api.add_router("", judges_router)
api.add_router("", suites_router)

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="project_list", permanent=False)),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("healthz/", healthz, name="healthz"),
    path("oidc/", include("mozilla_django_oidc.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", api.urls),
    path("", include("annotation.urls")),
    path("", include("judges.urls")),
    path("", include("suites.urls")),
    path("", include("monitoring.urls")),
    path("", include("agents.urls")),
]
