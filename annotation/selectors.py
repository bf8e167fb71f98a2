"""Reads that return querysets or plain values; no writes here."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db.models import Count, QuerySet

from annotation.models import Criterion, Label, Membership, Project, Role, Trace, Verdict


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


# Counting 100,000 labels takes ~40 ms even as an index-only scan; above this many the counts are cached briefly.
EXACT_LABEL_COUNT_LIMIT = 10_000
LABEL_COUNT_CACHE_SECONDS = 60


def criteria_with_label_counts(*, project: Project) -> list[Criterion]:
    """The project's criteria, each with `passes` and `fails`: exact on small projects, up to a minute old on
    large ones (an overview number, not ground truth — alignment reads the labels themselves)."""
    criteria = list(project.criteria.all())
    key = project.cache_key("label-counts")
    counts: dict[tuple[int, str], int] | None = cache.get(key)
    if counts is None:
        rows = (
            Label.objects.filter(criterion__project=project)
            .values_list("criterion_id", "verdict")
            .annotate(n=Count("*"))
            .order_by()
        )
        counts = {(criterion_id, verdict): n for criterion_id, verdict, n in rows}
        if sum(counts.values()) > EXACT_LABEL_COUNT_LIMIT:
            cache.set(key, counts, LABEL_COUNT_CACHE_SECONDS)
    for criterion in criteria:
        criterion.passes = counts.get((criterion.pk, Verdict.PASS), 0)
        criterion.fails = counts.get((criterion.pk, Verdict.FAIL), 0)
    return criteria


def trace_by_external_id(*, project: Project, external_id: str) -> Trace | None:
    """The project's trace with this id (the idempotency key of imports), or None."""
    return Trace.objects.filter(project=project, external_id=external_id).first()
