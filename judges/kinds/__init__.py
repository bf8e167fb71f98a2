"""Judge kinds behind one interface (`JudgeKind`), found by name in a registry.

The run loop (judges.services), versioning, promotion, suites and monitoring ask a judge's kind for what differs
between kinds, and never branch on the kind themselves. A new kind is a module here with a JudgeKind subclass,
and one entry in `_BUILT_IN` below.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

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
    return drifts


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
    "versions_drift",
]
