"""Judge kinds behind one interface (`JudgeKind`), found by name in a registry.

The run loop (judges.services), versioning, promotion, suites and monitoring ask a judge's kind for what differs
between kinds, and never branch on the kind themselves. A new kind is a module here with a JudgeKind subclass,
and one entry in `_BUILT_IN` below.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from django.db.models import Count, F

from annotation.models import CriterionVersion, Label
from annotation.services import DomainError
from judges.kinds.assertion import AssertionKind
from judges.kinds.base import TRACE_INPUT_FIELDS, Built, Drift, JudgeKind, Scorer, trace_input
from judges.kinds.classifier import ClassifierKind
from judges.kinds.external import ExternalKind
from judges.kinds.llm import LLMKind
from judges.kinds.reference import ReferenceKind
from judges.models import JudgeVersion

_BUILT_IN: tuple[JudgeKind, ...] = (AssertionKind(), ClassifierKind(), LLMKind(), ExternalKind(), ReferenceKind())
_registry: dict[str, JudgeKind] = {kind.name: kind for kind in _BUILT_IN}


def register(kind: JudgeKind) -> JudgeKind:
    """Add a kind (tests register their own). A name is registered once."""
    if kind.name in _registry:
        raise ValueError(f"a judge kind named {kind.name!r} is registered already")
    _registry[kind.name] = kind
    return kind


def unregister(name: str) -> None:
    del _registry[name]


def get(name: str) -> JudgeKind:
    """The kind registered under `name`. Raises DomainError naming the kinds there are."""
    try:
        return _registry[name]
    except KeyError:
        raise DomainError(f"kind: expected one of {', '.join(_registry)}, got {name!r}") from None


def all_kinds() -> list[JudgeKind]:
    """Every registered kind, in registration order."""
    return list(_registry.values())


def choices() -> list[tuple[str, str]]:
    """(name, display label) of every kind, for a form's choices."""
    return [(kind.name, kind.display) for kind in _registry.values()]


def version_scorer(version: JudgeVersion, *, as_of: datetime | None = None) -> Scorer:
    """Judges batches of traces with the version (see JudgeKind.scorer)."""
    return get(version.judge.kind).scorer(version, as_of=as_of)


def chunk_size(version: JudgeVersion) -> int:
    """Traces per batch handed to the version's scorer."""
    return get(version.judge.kind).chunk_size(version)


def versions_drift(version_ids: Iterable[int]) -> dict[int, Drift]:
    """Version id → how what the version froze has changed since it was made (JudgeKind.drift), for the versions
    built on a state that changed: they are offered a new version from the current state."""
    by_kind: dict[str, list[int]] = {}
    rows = JudgeVersion.objects.filter(pk__in=list(version_ids)).order_by().values_list("pk", "judge__kind")
    for version_id, kind in rows:
        by_kind.setdefault(kind, []).append(version_id)
    drifts: dict[int, Drift] = {}
    for kind, ids in by_kind.items():
        drifts.update(get(kind).drift(version_ids=ids))
    for version_id, stale in _made_under_an_earlier_definition([pk for pk, _ in rows]).items():
        drifts[version_id] = (
            replace(drifts[version_id], changes=(*drifts[version_id].changes, stale))
            if version_id in drifts
            else Drift(headline="was made under an earlier definition", changes=(stale,))
        )
    return drifts


def _made_under_an_earlier_definition(version_ids: list[int]) -> dict[int, str]:
    """Version id → what moved, for the versions made under an earlier definition of their criterion than today's
    words (whatever their kind: their runs measured agreement with labels that answered other words). Three
    queries."""
    stale = list(
        JudgeVersion.objects.filter(pk__in=version_ids, criterion_version__lt=F("judge__criterion__version"))
        .order_by()
        .values_list("pk", "criterion_version", "judge__criterion_id", "judge__criterion__version")
    )
    if not stale:
        return {}
    since = {
        (row["criterion_id"], row["criterion_version"]): row["n"]
        for row in Label.objects.filter(criterion_id__in={row[2] for row in stale})
        .values("criterion_id", "criterion_version")
        .annotate(n=Count("id"))
    }
    result = {}
    definitions = {
        (criterion_id, number): definition
        for criterion_id, number, definition in CriterionVersion.objects.filter(
            criterion_id__in={row[2] for row in stale}
        ).values_list("criterion_id", "number", "definition")
    }
    for pk, made_under, criterion_id, current in stale:
        if definitions.get((criterion_id, made_under)) == definitions.get((criterion_id, current), ""):
            continue  # edited and then put back: the words it was measured on are the words now
        newer = sum(n for (c, v), n in since.items() if c == criterion_id and v > made_under)
        result[pk] = (
            f"made under definition v{made_under}, the criterion is at v{current} now, with {newer} "
            f"label{'' if newer == 1 else 's'} made under a newer definition: measure a new version on them"
        )
    return result


__all__ = [
    "TRACE_INPUT_FIELDS",
    "Built",
    "Drift",
    "JudgeKind",
    "Scorer",
    "all_kinds",
    "choices",
    "chunk_size",
    "get",
    "register",
    "trace_input",
    "unregister",
    "version_scorer",
    "stale_definition",
    "versions_drift",
]


def stale_definition(version: JudgeVersion, *, criterion_version: int) -> str:
    """Why a (promoted) version's numbers may no longer mean what they say, for the monitoring and suite pages: it
    was made under an earlier definition of its criterion, now at `criterion_version` (which the caller has loaded:
    monitoring builds its checks on every drain, and a version made under the current definition costs no query).
    "" when it was not."""
    if version.criterion_version >= criterion_version:
        return ""
    stale = _made_under_an_earlier_definition([version.pk])
    return f"stale: {stale[version.pk]}" if version.pk in stale else ""
