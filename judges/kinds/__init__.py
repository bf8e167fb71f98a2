"""Judge kinds behind one interface (`JudgeKind`), found by name in a registry.

The run loop (judges.services), versioning, promotion, suites and monitoring ask a judge's kind for what differs
between kinds, and never branch on the kind themselves. A new kind is a module here with a JudgeKind subclass,
and one entry in `_BUILT_IN` below (judges.registry holds them by name).
"""

from __future__ import annotations

from datetime import datetime

from judges.kinds.assertion import AssertionKind
from judges.kinds.base import TRACE_INPUT_FIELDS, Built, JudgeKind, Scorer, trace_input
from judges.kinds.classifier import ClassifierKind
from judges.kinds.external import ExternalKind
from judges.kinds.llm import LLMKind
from judges.models import JudgeVersion
from judges.registry import all_kinds, choices, get, register, unregister

_BUILT_IN: tuple[JudgeKind, ...] = (AssertionKind(), ClassifierKind(), LLMKind(), ExternalKind())
for _kind in _BUILT_IN:
    register(_kind)


def version_scorer(version: JudgeVersion, *, as_of: datetime | None = None) -> Scorer:
    """Judges batches of traces with the version (see JudgeKind.scorer)."""
    return get(version.judge.kind).scorer(version, as_of=as_of)


def chunk_size(version: JudgeVersion) -> int:
    """Traces per batch handed to the version's scorer."""
    return get(version.judge.kind).chunk_size(version)


__all__ = [
    "TRACE_INPUT_FIELDS",
    "Built",
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
]
