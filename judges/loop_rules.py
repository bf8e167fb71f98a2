"""The loop's cadence, the maturity scale and coverage, as rules with no Django import (docs/expert-reliability.md
"The loop's cadence" and "Coverage"). `judges.loop` reads the database and hands the facts to these functions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

# The method's defaults: a major error-analysis cycle of at least 100 traces every 2–4 weeks (3 here), and a light
# review of 10–20 outlier traces every week.
DEFAULT_CYCLE_DAYS = 21
DEFAULT_CYCLE_SIZE = 100
DEFAULT_OUTLIER_DAYS = 7
DEFAULT_OUTLIER_SIZE = 10

# What each bound is checked against, with the reason in the error message.
LIMITS = {
    "cycle_days": (1, 365),
    "cycle_size": (1, 100_000),
    "outlier_days": (1, 365),
    "outlier_size": (1, 10_000),
}


class CadenceSettingError(ValueError):
    """A cadence setting out of range; the message names the setting and the value."""


def check_setting(name: str, value: object) -> int:
    """The setting as an int within its bounds, or CadenceSettingError naming it."""
    low, high = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise CadenceSettingError(f"{name}: expected a whole number from {low} to {high}, got {value!r}")
    if not low <= value <= high:
        raise CadenceSettingError(f"{name}: expected a whole number from {low} to {high}, got {value}")
    return value


@dataclass(frozen=True)
class Due:
    """Whether the next occurrence of something recurring is due: `due_at` is when it falls due (None: never done,
    so due now)."""

    last_at: datetime | None
    due_at: datetime | None
    is_due: bool


def next_due(*, last_at: datetime | None, every_days: int, now: datetime) -> Due:
    """A cycle last run at `last_at` is due again `every_days` later; one never run is due now."""
    if last_at is None:
        return Due(last_at=None, due_at=None, is_due=True)
    due_at = last_at + timedelta(days=every_days)
    return Due(last_at=last_at, due_at=due_at, is_due=now >= due_at)


# --- the maturity scale ---------------------------------------------------------------------------------------------

LEVELS = {
    1: "manual review",
    2: "regression suite in CI",
    3: "production sampling",
    4: "continuous evaluation of production traffic",
}
# The step that reaches each level, for the level below it.
NEXT_STEPS = {
    1: "Review traces in the queue: open-code at least one error-analysis cycle of 100 traces with notes.",
    2: "Build a golden set from reviewed traces and run the regression suite (evalsuite) in CI on every change.",
    3: "Promote an aligned judge and let monitoring judge a sample of production traffic.",
    4: "Keep monitoring judging production traffic every day (all traffic for checks that run locally).",
}
TOP_STEP = "The loop is at the top of the scale: keep the cadence (cycles, weekly outlier review) turning."


@dataclass(frozen=True)
class Maturity:
    level: int  # 0 before any review
    name: str
    next_step: str
    # level → the evidence that it is reached ("" when it is not), for every level of the scale.
    evidence: Mapping[int, str]


def maturity(reached: Mapping[int, str]) -> Maturity:
    """The project's level: the highest level reached with every level below it reached too (the scale is a ladder:
    production sampling without a regression suite is still level 1, and the next step says so)."""
    level = 0
    while reached.get(level + 1):
        level += 1
    next_step = NEXT_STEPS[level + 1] if level < max(LEVELS) else TOP_STEP
    return Maturity(
        level=level,
        name=LEVELS.get(level, "not started"),
        next_step=next_step,
        evidence={n: reached.get(n, "") for n in LEVELS},
    )


# --- coverage -------------------------------------------------------------------------------------------------------

NONE, BELOW, ALIGNED, PROMOTED, GUARDRAIL = "none", "below the bar", "aligned on dev", "promoted", "guardrail-ready"
# Weakest first: a criterion's status is the strongest its judges reach.
STATUS_ORDER = (NONE, BELOW, ALIGNED, PROMOTED, GUARDRAIL)
NO_OBSERVED_FAILURE = "no observed failure behind this criterion"


def judge_status(*, has_judge: bool, aligned_on_dev: bool, promoted: bool, guardrail_ready: bool) -> str:
    """A criterion's judge status: the strongest of its judges' states."""
    if guardrail_ready:
        return GUARDRAIL
    if promoted:
        return PROMOTED
    if aligned_on_dev:
        return ALIGNED
    return BELOW if has_judge else NONE


def is_aligned(status: str) -> bool:
    """A judge at least as good as the bar on dev stands behind the criterion."""
    return STATUS_ORDER.index(status) >= STATUS_ORDER.index(ALIGNED)


def share(part: int, whole: int) -> float | None:
    """A fraction in [0, 1], or None when there is nothing to take a share of (no failing trace yet)."""
    return part / whole if whole else None
