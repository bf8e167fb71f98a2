"""Whether a run meets the project's bar, and on how much evidence. Django-free.

The rule, the same on every page and in promotion (docs/promotion-and-comparisons.md): a run **meets** the bar when
the 95% lower bounds of its TPR (over the expert's passes) and of its TNR (over the expert's fails) are at or above
the bar's minimums: the same exact (Clopper–Pearson) intervals the run's report shows (judges.stats). A point
estimate is not evidence: TPR 1/1 is 100%, but all one label shows is that the true rate is above 2.5%. A run whose
point estimates reach the bar while a lower bound does not is **short** of evidence, and the label planner
(`judges.stats.labels_needed`) says how many labels of that class, at the rate seen, make the lower bound clear the
bar: the shortfall ("12 more fail labels"). A run whose point estimate is under the bar is **below** it, and no
number of labels helps: the judge has to get better.

Promotion asks this of the version's test run; of its dev run, where the judge is iterated on, it asks only that the
point estimates reach the bar (`BarCheck.reaches`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from judges.stats import labels_needed, proportion_interval

MEETS, SHORT, BELOW, UNDEFINED = "meets", "short", "below", "undefined"


def percent(value: float) -> str:
    """A rate as a whole percent ("90%")."""
    return f"{value:.0%}"


def bound_percent(value: float) -> str:
    """A lower bound to one decimal, rounded down: rounded to the nearest, 89.997% would read as the 90.0% it falls
    short of."""
    return f"{math.floor(value * 1000) / 10:.1f}%"


def _plural(count: int, word: str) -> str:
    return f"{count} more {word} label{'' if count == 1 else 's'}"


@dataclass(frozen=True)
class RateCheck:
    """One of the two rates against its minimum: `successes` of `n` expert labels of `label_class`."""

    name: str  # "TPR" or "TNR"
    label_class: str  # "pass" for TPR, "fail" for TNR: the expert labels the rate is measured on
    successes: int
    n: int
    minimum: float

    @property
    def value(self) -> float:
        return self.successes / self.n

    @property
    def low(self) -> float:
        """The lower end of the 95% interval the report shows for this rate."""
        # n > 0: a RateCheck exists only for a defined rate, so the interval is never None.
        low, _ = proportion_interval(self.successes, self.n) or (0.0, 1.0)
        return low

    @property
    def reaches(self) -> bool:
        """The point estimate is at or above the minimum."""
        return self.value >= self.minimum

    @property
    def meets(self) -> bool:
        """The lower bound is at or above the minimum: the rate clears the bar with 95% confidence."""
        return self.low >= self.minimum

    @property
    def labels_needed(self) -> int | None:
        """Labels of this class after which, at the rate seen, the lower bound reaches the minimum; None when no
        number does (the rate is not above the minimum, or the minimum is 100%, which no finite sample shows)."""
        if self.minimum >= 1 or self.value <= self.minimum:
            return None
        return labels_needed(self.value, self.minimum)

    @property
    def more_labels(self) -> int | None:
        """How many labels of this class are missing (0 when it meets the bar); None when labels cannot help."""
        if self.meets:
            return 0
        needed = self.labels_needed
        # At least one: the planner works from the rate, and a rate a hair under its own bound rounds both ways.
        return None if needed is None else max(1, needed - self.n)

    @property
    def shortfall(self) -> str:
        """ "12 more fail labels", or "" when the rate meets its minimum or labels cannot help."""
        more = self.more_labels
        return _plural(more, self.label_class) if more else ""

    def point_text(self) -> str:
        return f"{self.name} {percent(self.value)} ({self.successes}/{self.n})"

    def bound_text(self) -> str:
        return f"{self.name} ≥ {bound_percent(self.low)}"


@dataclass(frozen=True)
class BarCheck:
    """A run's report against a bar: the status (MEETS, SHORT, BELOW or UNDEFINED) and each rate's check."""

    status: str
    min_tpr: float
    min_tnr: float
    tpr: RateCheck | None = None
    tnr: RateCheck | None = None

    @property
    def meets(self) -> bool:
        return self.status == MEETS

    @property
    def reaches(self) -> bool:
        """Both point estimates reach the bar, with or without the evidence to show it (what dev asks)."""
        return self.status != UNDEFINED and all(rate.reaches for rate in self.rates)

    @property
    def rates(self) -> list[RateCheck]:
        return [rate for rate in (self.tpr, self.tnr) if rate is not None]

    @property
    def bar_text(self) -> str:
        """ "TPR ≥ 90% and TNR ≥ 90%"."""
        return f"TPR ≥ {percent(self.min_tpr)} and TNR ≥ {percent(self.min_tnr)}"

    @property
    def short_bar_text(self) -> str:
        """ "90%" when both minimums are the same, "95%/85%" (TPR/TNR) otherwise: for badges."""
        if self.min_tpr == self.min_tnr:
            return percent(self.min_tpr)
        return f"{percent(self.min_tpr)}/{percent(self.min_tnr)}"

    @property
    def shortfall(self) -> str:
        """ "34 more pass labels and 12 more fail labels"; "" unless the run is short of evidence."""
        if self.status != SHORT:
            return ""
        return " and ".join(rate.shortfall for rate in self.rates if rate.shortfall)

    def points_text(self) -> str:
        """ "TPR 100% (1/1) and TNR 100% (1/1)"."""
        return " and ".join(rate.point_text() for rate in self.rates)

    def bounds_text(self) -> str:
        """ "TPR ≥ 2.5% and TNR ≥ 2.5%": the 95% lower bounds."""
        return " and ".join(rate.bound_text() for rate in self.rates)

    def explain(self, subject: str) -> str:
        """Why the run meets the bar or not, in a sentence that starts with `subject` ("On test, apology v2")."""
        if self.status == UNDEFINED:
            return f"{subject} cannot measure both TPR and TNR: it needs expert passes and fails."
        if self.status == BELOW:
            text = f"{subject} has {self.points_text()}; the bar is {self.bar_text}."
            if all(rate.reaches for rate in self.rates):
                text += " A rate exactly at its minimum never clears it, however many labels: the judge must do better."
            return text
        if self.status == SHORT:
            return (
                f"{subject} has {self.points_text()}, but on too few labels: the 95% lower bounds are "
                f"{self.bounds_text()}, under the bar of {self.bar_text}. At these rates, {self.shortfall} would "
                "show it."
            )
        return f"{subject} has {self.points_text()}; the 95% lower bounds ({self.bounds_text()}) meet the bar."


def _rate(name: str, label_class: str, successes: Any, misses: Any, minimum: float) -> RateCheck | None:
    if not isinstance(successes, int) or not isinstance(misses, int) or successes < 0 or misses < 0:
        return None
    if successes + misses == 0:
        return None
    return RateCheck(name, label_class, successes, successes + misses, minimum)


def bar_check(report: dict[str, Any] | None, *, min_tpr: float, min_tnr: float) -> BarCheck:
    """A run's alignment report (its confusion counts tp, fn, fp, tn) against the bar; see the module docstring."""
    report = report or {}
    tpr = _rate("TPR", "pass", report.get("tp"), report.get("fn"), min_tpr)
    tnr = _rate("TNR", "fail", report.get("tn"), report.get("fp"), min_tnr)
    if tpr is None or tnr is None:
        return BarCheck(UNDEFINED, min_tpr, min_tnr, tpr, tnr)
    if tpr.meets and tnr.meets:
        status = MEETS
    elif all(rate.meets or rate.more_labels is not None for rate in (tpr, tnr)):
        status = SHORT  # both reach the bar, and more labels at these rates would show it
    else:
        status = BELOW
    return BarCheck(status, min_tpr, min_tnr, tpr, tnr)
