"""Project membership managed by the expert: invitations by email, role changes, removals, and turning pending
invitations into memberships when the invited person logs in (single sign-on or password).

Invitations grant the engineer or viewer role only: the expert is the one person whose labels are ground truth, and
handing that over is not something an email address should be able to receive by accident.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from annotation.models import Invitation, Membership, Project, Role
from annotation.services import DomainError, membership_set

INVITABLE_ROLES = (Role.ENGINEER, Role.VIEWER)


def normalize_email(email: str) -> str:
    return (email or "").strip().lower()


def _check_role(role: str) -> None:
    if role not in INVITABLE_ROLES:
        raise DomainError(f"Role must be one of {', '.join(INVITABLE_ROLES)}, got {role!r}")


@transaction.atomic
def invitation_create(*, project: Project, email: str, role: str, invited_by: AbstractBaseUser) -> Invitation:
    """A pending invitation; DomainError when the address is invalid, already a member's, or already invited."""
    address = normalize_email(email)
    try:
        validate_email(address)
    except ValidationError:
        raise DomainError(f"{email!r} is not a valid email address") from None
    _check_role(role)
    if Membership.objects.filter(project=project, user__email__iexact=address).exists():
        raise DomainError(f"{address} is already a member of this project; change their role in the list instead")
    try:
        with transaction.atomic():
            return Invitation.objects.create(project=project, email=address, role=role, invited_by=invited_by)
    except IntegrityError:
        raise DomainError(f"{address} is already invited; withdraw that invitation first to change its role") from None


@transaction.atomic
def invitation_withdraw(*, project: Project, invitation_id: int) -> None:
    deleted, _ = Invitation.objects.filter(project=project, pk=invitation_id, accepted_at__isnull=True).delete()
    if not deleted:
        raise DomainError("That invitation is no longer pending (accepted or withdrawn already)")


@transaction.atomic
def member_set_role(*, project: Project, user_id: int, role: str) -> Membership:
    _check_role(role)
    membership = Membership.objects.select_related("user").filter(project=project, user_id=user_id).first()
    if membership is None:
        raise DomainError("That person is not a member of this project")
    return membership_set(project=project, user=membership.user, role=role)


@transaction.atomic
def member_remove(*, project: Project, user_id: int) -> None:
    if project.expert_id == user_id:
        raise DomainError("The project's expert cannot be removed; make someone else the expert first")
    deleted, _ = Membership.objects.filter(project=project, user_id=user_id).delete()
    if not deleted:
        raise DomainError("That person is not a member of this project")


@transaction.atomic
def invitations_accept(*, user: AbstractBaseUser) -> list[Membership]:
    """Turn the pending invitations for the user's email into memberships (the invited role; an existing membership
    keeps its role). Safe to run twice: rows are claimed with a conditional UPDATE."""
    address = normalize_email(getattr(user, "email", ""))
    if not address:
        return []
    accepted: list[Membership] = []
    pending = Invitation.objects.select_for_update().filter(email=address, accepted_at__isnull=True)
    for invitation in pending.select_related("project"):
        claimed = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
            accepted_at=timezone.now(), accepted_by=user
        )
        if not claimed:
            continue
        membership, _ = Membership.objects.get_or_create(
            project=invitation.project, user=user, defaults={"role": invitation.role}
        )
        accepted.append(membership)
    return accepted


def invitations_pending(*, project: Project) -> QuerySet[Invitation]:
    return Invitation.objects.filter(project=project, accepted_at__isnull=True).select_related("invited_by")


def members_with_roles(*, project: Project) -> QuerySet[Membership]:
    return Membership.objects.filter(project=project).select_related("user").order_by("user__username")


def invitations_accept_on_login(sender: object, request: object, user: AbstractBaseUser, **kwargs: object) -> None:
    """Receiver of `user_logged_in`."""
    invitations_accept(user=user)
