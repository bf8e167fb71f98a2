"""Writes that span models or have side effects. Each runs in a transaction and raises DomainError on bad input."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import ApiToken, Membership, Project, Role


class DomainError(Exception):
    """A rule of the domain was broken; the message is shown to the user as is."""


@transaction.atomic
def project_create(
    *, slug: str, name: str = "", expert: AbstractBaseUser | None = None, description: str = ""
) -> Project:
    if Project.objects.filter(slug=slug).exists():
        raise DomainError(f"A project with slug {slug!r} already exists")
    project = Project.objects.create(slug=slug, name=name or slug, description=description)
    if expert is not None:
        project_set_expert(project=project, user=expert)
    return project


@transaction.atomic
def project_set_expert(*, project: Project, user: AbstractBaseUser) -> None:
    """Make `user` the project's one expert; a previous expert stays on as an engineer."""
    if project.expert_id and project.expert_id != user.pk:
        Membership.objects.filter(project=project, user_id=project.expert_id).update(role=Role.ENGINEER)
    project.expert = user
    project.save(update_fields=["expert"])
    Membership.objects.update_or_create(project=project, user=user, defaults={"role": Role.EXPERT})


@transaction.atomic
def membership_set(*, project: Project, user: AbstractBaseUser, role: str) -> Membership:
    if role == Role.EXPERT:
        project_set_expert(project=project, user=user)
        return Membership.objects.get(project=project, user=user)
    if project.expert_id == user.pk:
        raise DomainError(f"{user} is the project's expert; make someone else the expert first")
    if role not in Role.values:
        raise DomainError(f"Unknown role {role!r}; choose one of {', '.join(Role.values)}")
    membership, _ = Membership.objects.update_or_create(project=project, user=user, defaults={"role": role})
    return membership


def api_token_create(*, project: Project, name: str) -> tuple[ApiToken, str]:
    """A new token for the project; the raw value is returned once and only its hash is stored."""
    if not name.strip():
        raise DomainError("A token needs a name")
    raw = ApiToken.generate()
    token = ApiToken.objects.create(project=project, name=name.strip(), token_hash=ApiToken.hash(raw))
    return token, raw
