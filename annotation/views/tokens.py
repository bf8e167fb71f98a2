"""The project's API tokens (settings page of the expert): list, create (the raw value shown once), revoke."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.forms import ApiTokenForm
from annotation.models import ApiToken
from annotation.services import DomainError, api_token_create, api_token_revoke

TEMPLATE = "annotation/api_tokens.html"


def _render(request: HttpRequest, access: ProjectAccess, form: ApiTokenForm, **extra: object) -> HttpResponse:
    tokens = ApiToken.objects.filter(project=access.project).select_related("created_by").order_by("-created_at")
    context = {"project": access.project, "access": access, "form": form, "tokens": tokens, **extra}
    response = render(request, TEMPLATE, context, status=400 if form.errors else 200)
    # The page may hold a raw token: no browser or proxy cache keeps it.
    response["Cache-Control"] = "no-store"
    return response


@login_required
def api_tokens(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.MANAGE_TOKENS)
    if request.method != "POST":
        return _render(request, access, ApiTokenForm())
    form = ApiTokenForm(request.POST)
    if form.is_valid():
        days = form.cleaned_data["expires_in_days"]
        try:
            token, raw = api_token_create(
                project=access.project,
                name=form.cleaned_data["name"],
                expires_at=None if days is None else timezone.now() + timedelta(days=days),
                created_by=request.user,
            )
        except DomainError as exc:
            form.add_error(None, str(exc))
        else:
            # Rendered, not redirected: the raw value exists only in this response (never in a session or a message).
            return _render(request, access, ApiTokenForm(), new_token=token, raw_token=raw)
    return _render(request, access, form)


@login_required
@require_POST
def api_token_revoke_view(request: HttpRequest, slug: str, token_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.MANAGE_TOKENS)
    token = access.get_object_or_404(ApiToken, pk=token_id)
    api_token_revoke(token=token, user=request.user)
    messages.success(request, f"Token “{token.name}” revoked: requests with it now get 401.")
    return redirect("api_tokens", slug=access.project.slug)
