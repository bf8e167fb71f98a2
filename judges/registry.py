"""The registry of judge kinds: each kind's name (what Judge.kind stores) to its plug-in (judges.kinds).

Apart from the kinds themselves so that the Judge model can offer the registered names as its choices without
importing the kinds, which build on the model. judges.kinds registers the built-in kinds when it is imported, which
the app's `ready` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from annotation.services import DomainError

if TYPE_CHECKING:
    from judges.kinds.base import JudgeKind

_registry: dict[str, JudgeKind] = {}


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
    """(name, display label) of every kind: the choices of Judge.kind."""
    return [(kind.name, kind.label[:1].upper() + kind.label[1:]) for kind in _registry.values()]
