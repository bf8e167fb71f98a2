"""The golden set: traces a release must keep passing, each kept for a reason. Every change is a new version."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from annotation.models import Project, Trace
from annotation.services import DomainError
from annotation.trace_format import RecordError, dumps, parse_reference
from suites.models import GoldenEntry, GoldenSet, GoldenSetVersion, ReferenceEdit

REASONS = {choice.value for choice in GoldenEntry.Reason}
# Traces per query when an export looks up the golden reasons of the traces it writes.
EXPORT_CHUNK = 2000


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
    if changed:
        # A new reason is a new membership row, so older versions keep the reason they had. One UPDATE for all of
        # them: re-filing a few thousand traces from a file must not be a few thousand round trips.
        GoldenEntry.objects.filter(pk__in=[e.pk for e in changed]).update(
            removed_in=number, removed_by=user, removed_at=now
        )
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


@transaction.atomic
def golden_reference_set(
    *, project: Project, trace: Trace, reference: Any, user: AbstractBaseUser | None = None
) -> bool:
    """Sets (None: clears) the known-good answer of a trace of the current golden set, recording who and when.

    The reference is stored on the trace, not on the entry: it is a fact about the input, so it stays when the
    trace is re-filed or leaves the set, and every judge reads it from there. Returns False when it was already
    that value (nothing recorded). Raises DomainError for a trace outside the current set or an unstorable value.
    """
    if trace.project_id != project.pk:
        raise DomainError(f"Not a trace of {project.slug}: {trace.external_id}.")
    golden = _locked(project)
    if not GoldenEntry.objects.filter(golden_set=golden, trace=trace, removed_in=None).exists():
        raise DomainError(f"{trace.external_id} is not in the current golden set; add it before giving it a reference.")
    try:
        reference = parse_reference(reference)
    except RecordError as exc:
        raise DomainError(str(exc)) from None
    locked = Trace.objects.select_for_update().only("id", "reference").get(pk=trace.pk)
    if locked.reference == reference and type(locked.reference) is type(reference):
        return False
    ReferenceEdit.objects.create(trace=trace, reference=reference, previous=locked.reference, edited_by=user)
    Trace.objects.filter(pk=trace.pk).update(reference=reference)
    trace.reference = reference
    return True


def reference_history(*, trace: Trace, limit: int = 20) -> list[ReferenceEdit]:
    """The trace's reference edits, newest first, with who made each."""
    return list(
        ReferenceEdit.objects.filter(trace=trace).select_related("edited_by").order_by("-edited_at", "-id")[:limit]
    )


def _names(traces: list[Trace]) -> str:
    if len(traces) <= 3:
        return ", ".join(t.external_id for t in traces)
    return f"{len(traces)} traces"


def golden_entries(*, project: Project, version: int | None = None) -> QuerySet[GoldenEntry]:
    """The entries of a version (the current one by default), in the order they were added, with their traces.
    An unknown version raises DomainError."""
    current = golden_current_version(project=project)
    number = current if version is None else version
    if number < 0 or number > current:
        raise DomainError(f"The golden set of {project.slug} has versions 1 to {current}, not {number}.")
    return (
        GoldenEntry.objects.filter(golden_set__project=project, added_in__lte=number)
        .filter(Q(removed_in=None) | Q(removed_in__gt=number))
        .select_related("trace")
        .order_by("added_in", "id")
    )


# --- reads for the pages and the exports ------------------------------------------------------------------------


def golden_current_version(*, project: Project) -> int:
    """The set's current version number, 0 when nothing was ever added. Never creates the set (pages are reads)."""
    return GoldenSet.objects.filter(project=project).values_list("current_version", flat=True).first() or 0


def golden_size(*, project: Project) -> int:
    """How many traces the current version holds: the size recorded with it, one indexed row."""
    number = golden_current_version(project=project)
    if not number:
        return 0
    return (
        GoldenSetVersion.objects.filter(golden_set__project=project, number=number)
        .values_list("size", flat=True)
        .first()
        or 0
    )


def golden_versions(*, project: Project) -> QuerySet[GoldenSetVersion]:
    """The version history, newest first, with who made each change."""
    return GoldenSetVersion.objects.filter(golden_set__project=project).select_related("created_by").order_by("-number")


@dataclass(frozen=True)
class GoldenPanel:
    """What the review page shows about one trace: its current membership (if any) and the reasons to choose from."""

    entry: GoldenEntry | None
    reasons: list[tuple[str, str]]


def golden_panel_state(*, trace: Trace) -> GoldenPanel:
    entry = GoldenEntry.objects.filter(trace=trace, removed_in=None).select_related("added_by").first()
    return GoldenPanel(entry=entry, reasons=list(GoldenEntry.Reason.choices))


def golden_jsonl(*, project: Project, version: int | None = None) -> Iterator[bytes]:
    """A version of the golden set as JSONL lines: each trace in the trace format (what export_traces writes, so
    import_traces reads it back) plus `"golden": {"reason", "comment", "version"}`, in trace id order.
    Streams in chunks; an unknown version raises DomainError before the first line."""
    from annotation.management.commands.export_traces import export_records

    entries = golden_entries(project=project, version=version)
    number = golden_current_version(project=project) if version is None else version

    def lines() -> Iterator[bytes]:
        golden = {}
        for trace_id, external_id, reason, comment in entries.order_by().values_list(
            "trace_id", "trace__external_id", "reason", "comment"
        ):
            golden[external_id] = (trace_id, reason, comment)
        ids = sorted(trace_id for trace_id, _, _ in golden.values())
        for start in range(0, len(ids), EXPORT_CHUNK):
            chunk = Trace.objects.filter(pk__in=ids[start : start + EXPORT_CHUNK])
            for record in export_records(project, traces=chunk):
                _, reason, comment = golden[record["id"]]
                record["golden"] = {"reason": reason, "comment": comment, "version": number}
                yield dumps(record).encode("utf-8") + b"\n"

    return lines()


@dataclass(frozen=True)
class GoldenRemoval:
    traces: int  # traces of the project among the ids given
    version: int  # the set's version afterwards
    changed: bool  # a new version was made (some of the traces were in the set)


@transaction.atomic
def golden_remove_by_ids(
    *, project: Project, trace_ids: Iterable[int], user: AbstractBaseUser | None = None
) -> GoldenRemoval:
    """golden_remove for the project's traces among `trace_ids` (ids of other projects' traces are ignored)."""
    traces = list(Trace.objects.filter(project=project, pk__in=list(trace_ids)).only("id", "external_id", "project_id"))
    if not traces:
        return GoldenRemoval(traces=0, version=golden_current_version(project=project), changed=False)
    before = _locked(project).current_version
    after = golden_remove(project=project, traces=traces, user=user)
    return GoldenRemoval(traces=len(traces), version=after, changed=after != before)
