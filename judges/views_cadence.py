"""The loop's settings, from the project page's cadence panel: the expert sets the cycle and the digest webhook."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from annotation.access import Permission, get_project_for_user
from annotation.services import DomainError
from judges.loop_settings import loop_cadence_set


def _whole(request: HttpRequest, name: str) -> object:
    """The posted value as an int when it is one; else as typed, for the service to name in its error."""
    raw = request.POST.get(name, "").strip()
    try:
        return int(raw)
    except ValueError:
        return raw


@login_required
@require_POST
def loop_cadence_update(request: HttpRequest, slug: str) -> HttpResponse:
    # The cadence, like the promotion bar, is the expert's to set.
    access = get_project_for_user(request, slug, Permission.SET_PROMOTION_BAR)
    try:
        loop_cadence_set(
            project=access.project,
            cycle_days=_whole(request, "cycle_days"),
            cycle_size=_whole(request, "cycle_size"),
            outlier_days=_whole(request, "outlier_days"),
            outlier_size=_whole(request, "outlier_size"),
            digest_url=request.POST.get("digest_url", ""),
            user=request.user,
        )
    except DomainError as exc:
        messages.error(request, f"Cadence not changed: {exc}")
    else:
        messages.success(request, "Cadence saved.")
    return redirect(f"{access.project.get_absolute_url()}#loop")
