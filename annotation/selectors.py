"""Reads that return querysets or plain values; no writes here."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from annotation.models import Membership, Project, Role


def project_list_for_user(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Project]:
    if not user.is_authenticated:
        return Project.objects.none()
    return Project.objects.filter(memberships__user=user).distinct()


def project_get_for_user(*, user: AbstractBaseUser | AnonymousUser, slug: str) -> Project | None:
    """The project if the user is a member (or its expert), else None — callers answer 404, never 403."""
    if not user.is_authenticated:
        return None
    return project_list_for_user(user=user).filter(slug=slug).select_related("expert").first()


def project_role(*, project: Project, user: AbstractBaseUser | AnonymousUser) -> str | None:
    if not user.is_authenticated:
        return None
    if project.expert_id == user.pk:
        return Role.EXPERT
    return Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
