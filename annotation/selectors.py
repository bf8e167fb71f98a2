"""Reads that return querysets or plain values; no writes here."""

from __future__ import annotations

from collections.abc import Sequence

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, QuerySet

from annotation.models import Criterion, Label, Membership, Project, Role, Trace, Verdict

# Ids of traces by external id. The LATERAL form makes each lookup a probe of the (project, external_id) unique
# index: with `external_id = ANY(...)` and statistics not yet caught up with a big import, the planner scanned the
# whole project for every batch, which made a million-trace import quadratic.
TRACE_IDS_SQL = (
    "SELECT b.external_id, t.id FROM unnest(%s::text[]) AS b(external_id) CROSS JOIN LATERAL"
    " (SELECT id FROM annotation_trace WHERE project_id = %s AND external_id = b.external_id) AS t"
)
TRACE_IDS_CHUNK = 5000


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


def trace_ids(*, project_id: int, external_ids: Sequence[str]) -> dict[str, int]:
    """external_id → trace id for those of `external_ids` that the project has; missing ones are left out."""
    found: dict[str, int] = {}
    for start in range(0, len(external_ids), TRACE_IDS_CHUNK):
        chunk = list(external_ids[start : start + TRACE_IDS_CHUNK])
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(TRACE_IDS_SQL, [chunk, project_id])
                found.update(cursor.fetchall())
        else:
            found.update(
                Trace.objects.filter(project_id=project_id, external_id__in=chunk).values_list("external_id", "id")
            )
    return found


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
