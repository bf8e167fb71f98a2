"""Which levels of the maturity scale a project has reached, as the stages that know say: a registry.

Level 2 (a regression suite in CI) is known to suites, levels 3 and 4 (production sampling, continuous evaluation)
to monitoring: both are stage-3 apps that judges must not import. Each registers, in its `AppConfig.ready`, a
function that returns the evidence that a project reached a level ("suite run “v1.2” on 2026-11-20"), or "" when it
has not; `judges.loop` asks every signal (the way `judges.monitored` asks its providers). Level 1 (manual review)
is annotation's, read by judges directly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from judges.loop_rules import LEVELS

if TYPE_CHECKING:
    from annotation.models import Project

# (project, now) → the evidence that the level is reached, or "".
LevelEvidence = Callable[["Project", datetime], str]


@dataclass(frozen=True)
class MaturitySignal:
    name: str
    level: int
    evidence: LevelEvidence


_signals: dict[str, MaturitySignal] = {}


def maturity_register(*, name: str, level: int, evidence: LevelEvidence) -> None:
    """Say how to tell that a project reached `level`. Registering a name again replaces it (safe to repeat)."""
    if level not in LEVELS:
        raise ValueError(f"level: expected one of {sorted(LEVELS)}, got {level!r} for signal {name!r}")
    _signals[name] = MaturitySignal(name=name, level=level, evidence=evidence)


def maturity_unregister(name: str) -> None:
    _signals.pop(name, None)


def levels_reached(*, project: Project, now: datetime) -> dict[int, str]:
    """level → the evidence of every registered signal that says it is reached (the first that does, by name)."""
    reached: dict[int, str] = {}
    for signal in sorted(_signals.values(), key=lambda s: s.name):
        if signal.level not in reached:
            text = signal.evidence(project, now)
            if text:
                reached[signal.level] = text
    return reached
