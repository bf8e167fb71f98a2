"""The members page: every member sees who is in the project and with which role; the expert invites people by
email, withdraws invitations, and changes or removes members' roles (Permission.MANAGE_MEMBERS)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from annotation.access import Permission, get_project_for_user
from annotation.members import (
    INVITABLE_ROLES,
    invitation_create,
    invitation_withdraw,
    invitations_pending,
    member_remove,
    member_set_role,
    members_with_roles,
)
from annotation.services import DomainError

ACTIONS = ("invite", "withdraw", "set_role", "remove")


def _int(value: str | None) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise DomainError("The form names no member or invitation; reload the page and try again") from None


@login_required
@require_http_methods(["GET", "POST"])
def project_members(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    project = access.project
    if request.method == "POST":
        access.require(Permission.MANAGE_MEMBERS)
        action = request.POST.get("action", "")
        try:
            if action == "invite":
                invitation = invitation_create(
                    project=project,
                    email=request.POST.get("email", ""),
                    role=request.POST.get("role", ""),
                    invited_by=request.user,
                )
                messages.success(request, f"Invited {invitation.email} as {invitation.role}.")
            elif action == "withdraw":
                invitation_withdraw(project=project, invitation_id=_int(request.POST.get("invitation")))
                messages.success(request, "Invitation withdrawn.")
            elif action == "set_role":
                member_set_role(
                    project=project, user_id=_int(request.POST.get("user")), role=request.POST.get("role", "")
                )
                messages.success(request, "Role changed.")
            elif action == "remove":
                member_remove(project=project, user_id=_int(request.POST.get("user")))
                messages.success(request, "Member removed.")
            else:
                raise DomainError(f"Unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
        except DomainError as exc:
            messages.error(request, str(exc))
        return redirect("project_members", project.slug)
    context = {
        "project": project,
        "access": access,
        "members": members_with_roles(project=project),
        "invitations": invitations_pending(project=project) if access.can(Permission.MANAGE_MEMBERS) else [],
        "roles": INVITABLE_ROLES,
    }
    return render(request, "annotation/members.html", context)
