from __future__ import annotations

urlpatterns: list = []

# Two suite runs side by side, per criterion (suites/views_compare.py). One self-contained block for an easy merge.
from django.urls import path  # noqa: E402

from suites import views_compare  # noqa: E402

urlpatterns += [
    path("projects/<slug:slug>/suites/compare/", views_compare.suite_compare, name="suite_compare"),
]
