"""The golden set: traces a release must keep passing, each kept for a reason. Every change is a new version."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotation.models import Project, Trace
from annotation.services import DomainError
from suites.models import GoldenEntry, GoldenSet, GoldenSetVersion

REASONS = {choice.value for choice in GoldenEntry.Reason}


def golden_set_for(project: Project) -> GoldenSet:
    golden, _ = GoldenSet.objects.get_or_create(project=project)
    return golden


def _locked(project: Project) -> GoldenSet:
    golden_set_for(project)
    return GoldenSet.objects.select_for_update().get(project=project)


def _new_version(golden: GoldenSet, user: AbstractBaseUser | None, summary: str) -> int:
    golden.current_version += 1
    golden.save(update_fields=["current_version"])
    size = GoldenEntry.objects.filter(golden_set=golden, removed_in=None).count()
    GoldenSetVersion.objects.create(
        golden_set=golden, number=golden.current_version, size=size, summary=summary, created_by=user
    )
    return golden.current_version


@transaction.atomic
def golden_add(
    *,
    project: Project,
    traces: Iterable[Trace],
    reason: str,
    comment: str = "",
    user: AbstractBaseUser | None = None,
) -> int:
    """Adds traces (of this project) to the golden set in one new version, or changes the reason of those already
    in it. Returns the new version number, or the current one when nothing changed."""
    if reason not in REASONS:
        raise DomainError(f"Unknown reason {reason!r}: choose one of {', '.join(sorted(REASONS))}.")
    traces = list(traces)
    foreign = [t.external_id for t in traces if t.project_id != project.pk]
    if foreign:
        raise DomainError(f"Not traces of {project.slug}: {', '.join(foreign[:5])}.")
    golden = _locked(project)
    current = {e.trace_id: e for e in GoldenEntry.objects.filter(golden_set=golden, removed_in=None)}
    added = [t for t in traces if t.pk not in current]
    changed = [
        current[t.pk]
        for t in traces
        if t.pk in current and (current[t.pk].reason, current[t.pk].comment) != (reason, comment)
    ]
    if not added and not changed:
        return golden.current_version
    number = golden.current_version + 1
    now = timezone.now()
    for entry in changed:
        # A new reason is a new membership row, so older versions keep the reason they had.
        entry.removed_in, entry.removed_by, entry.removed_at = number, user, now
        entry.save(update_fields=["removed_in", "removed_by", "removed_at"])
    rows = [*added, *(Trace(pk=e.trace_id, external_id="") for e in changed)]
    GoldenEntry.objects.bulk_create(
        GoldenEntry(
            golden_set=golden,
            trace_id=t.pk,
            reason=reason,
            comment=comment,
            added_in=number,
            added_by=user,
            added_at=now,
        )
        for t in rows
    )
    label = GoldenEntry.Reason(reason).label.lower()
    parts = []
    if added:
        parts.append(f"added {_names(added)} ({label})")
    if changed:
        parts.append(f"re-filed {len(changed)} as {label}")
    return _new_version(golden, user, "; ".join(parts))


@transaction.atomic
def golden_remove(*, project: Project, traces: Iterable[Trace], user: AbstractBaseUser | None = None) -> int:
    """Takes traces out of the golden set in one new version (a no-op for traces not in it)."""
    golden = _locked(project)
    traces = list(traces)
    entries = GoldenEntry.objects.filter(golden_set=golden, removed_in=None, trace__in=[t.pk for t in traces])
    if not entries.exists():
        return golden.current_version
    number = golden.current_version + 1
    removed = entries.update(removed_in=number, removed_by=user, removed_at=timezone.now())
    return _new_version(golden, user, f"removed {_names(traces) if removed == len(traces) else f'{removed} traces'}")


def _names(traces: list[Trace]) -> str:
    if len(traces) <= 3:
        return ", ".join(t.external_id for t in traces)
    return f"{len(traces)} traces"


def golden_entries(*, project: Project, version: int | None = None) -> QuerySet[GoldenEntry]:
    """The entries of a version (the current one by default), in the order they were added, with their traces.
    An unknown version raises DomainError."""
    golden = golden_set_for(project)
    number = golden.current_version if version is None else version
    if number < 0 or number > golden.current_version:
        raise DomainError(f"The golden set of {project.slug} has versions 1 to {golden.current_version}, not {number}.")
    return (
        GoldenEntry.objects.filter(golden_set=golden, added_in__lte=number)
        .filter(Q(removed_in=None) | Q(removed_in__gt=number))
        .select_related("trace")
        .order_by("added_in", "id")
    )
