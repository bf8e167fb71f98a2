"""The iteration-history chart of a judge's page: TPR, TNR and κ of each version on dev, with their 95% intervals
and the alignment target, composed from `core.charts` and drawn by `core/_chart.html`. No Django at run time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.charts import QUARTERS, Chart, Frame, Linear, Marker, Rule, Slots, Tick, fixed, ticks

if TYPE_CHECKING:
    from judges.models import JudgeRun
    from judges.reliability import RateRow

HISTORY_METRICS = (("tpr", "TPR"), ("tnr", "TNR"), ("kappa", "κ"))
WIDTH, HEIGHT, PAD = 640, 220, 36
# κ may be negative; the y axis runs from Y_MIN so a worse-than-chance judge is still drawn.
Y_MIN, Y_MAX = -0.2, 1.0
# The three metrics of a version stand side by side around its slot's centre.
OFFSETS = (-10, 0, 10)


@dataclass(frozen=True)
class HistoryRow:
    number: int
    run: JudgeRun | None
    # metric key → (value, low, high); value None when the split had no expert pass (TPR) or fail (TNR).
    metrics: dict[str, tuple[float | None, float | None, float | None]]


def history_rows(numbers: list[int], runs: dict[int, JudgeRun]) -> list[HistoryRow]:
    rows = []
    for number in numbers:
        run = runs.get(number)
        metrics: dict[str, tuple[float | None, float | None, float | None]] = {}
        for key, _ in HISTORY_METRICS:
            report = run.report if run and run.report else {}
            interval = (report.get("ci") or {}).get(key) or (None, None)
            metrics[key] = (report.get(key), interval[0], interval[1])
        rows.append(HistoryRow(number=number, run=run, metrics=metrics))
    return rows


@dataclass(frozen=True, kw_only=True)
class HistoryChart(Chart):
    points: list[Marker]
    target: Rule
    # The TNR's own line when the bar's TNR minimum differs from its TPR minimum (`target` is then the TPR's).
    target_tnr: Rule | None = None


def history_chart(rows: list[HistoryRow], *, target: float, target_tnr: float | None = None) -> HistoryChart:
    """Per version with a dev run, one point per metric with its 95% whisker, side by side; a dashed line at the
    target (the project's bar: one line, or the TPR's and the TNR's when they differ); y ticks. Versions oldest
    first, left to right."""
    measured = [row for row in sorted(rows, key=lambda r: r.number) if row.run is not None]
    frame = Frame.around(WIDTH - 2 * PAD, HEIGHT - 2 * PAD, left=PAD, top=PAD, right=PAD, bottom=PAD)
    slots = Slots.across(frame.left, frame.right - frame.left, len(measured))
    y = Linear.vertical(frame, Y_MIN, Y_MAX, clamp=True)
    points = []
    for index, row in enumerate(measured):
        for offset, (key, name) in zip(OFFSETS, HISTORY_METRICS, strict=True):
            value, low, high = row.metrics[key]
            if value is None:
                continue
            points.append(
                Marker(
                    x=slots.center(index) + offset,
                    y=y(value),
                    low_y=y(low) if low is not None else None,
                    high_y=y(high) if high is not None else None,
                    whisker=True,
                    r=4,
                    css_class=f"point {key}",
                    title=f"v{row.number} {name} {fixed(value, 3)}",
                    data=(("version", row.number), ("metric", key)),
                )
            )
    if target_tnr is None or target_tnr == target:
        rule, tnr_rule, named = Rule(y=y(target), css_class="target", title=f"target {target}"), None, f"{target}"
    else:
        rule = Rule(y=y(target), css_class="target", title=f"TPR target {target}")
        tnr_rule = Rule(y=y(target_tnr), css_class="target", title=f"TNR target {target_tnr}")
        named = f"{target} TPR and {target_tnr} TNR"
    return HistoryChart(
        frame=frame,
        title=f"TPR, TNR and kappa per version on dev, with 95% intervals and the {named} target",
        title_id="history-title",
        empty=not measured,
        css_class="chart-svg history-chart",
        y_ticks=ticks(y, QUARTERS, lambda v: fixed(v, 2)),
        x_ticks=[Tick(row.number, slots.center(i), f"v{row.number}") for i, row in enumerate(measured)],
        marks=[rule, *([tnr_rule] if tnr_rule else []), *points],
        points=points,
        target=rule,
        target_tnr=tnr_rule,
    )


FATIGUE_SERIES = (("fail_rate", "fail rate", -6), ("self_agreement", "self-agreement", 6))


def fatigue_chart(rows: list[RateRow]) -> Chart:
    """Per position bucket of a sitting (1–20, 21–40, …), the expert's fail rate on first reading and, where labels
    given there were re-reviewed blind, their self-agreement, each with its 95% whisker: does the expert find fewer
    failures, or agree less with themself, late in a long sitting?"""
    frame = Frame.around(WIDTH - 2 * PAD, HEIGHT - 2 * PAD, left=PAD, top=PAD, right=PAD, bottom=PAD)
    slots = Slots.across(frame.left, frame.right - frame.left, len(rows))
    y = Linear.vertical(frame, 0.0, 1.0, clamp=True)
    points = []
    for index, row in enumerate(rows):
        values = {"fail_rate": (row.rate, row.interval), "self_agreement": (row.agreement, row.agreement_interval)}
        for key, name, offset in FATIGUE_SERIES:
            value, interval = values[key]
            if value is None:
                continue
            points.append(
                Marker(
                    x=slots.center(index) + offset,
                    y=y(value),
                    low_y=y(interval[0]) if interval else None,
                    high_y=y(interval[1]) if interval else None,
                    whisker=True,
                    r=4,
                    css_class=f"point {key}",
                    title=f"positions {row.label}: {name} {fixed(value, 2)}",
                    data=(("bucket", row.label), ("metric", key)),
                )
            )
    return Chart(
        frame=frame,
        title="Fail rate and self-agreement by position in a sitting, with 95% intervals",
        title_id="fatigue-title",
        empty=not rows,
        css_class="chart-svg fatigue-chart",
        y_ticks=ticks(y, QUARTERS, lambda v: fixed(v, 2)),
        x_ticks=[Tick(row.label, slots.center(i), row.label) for i, row in enumerate(rows)],
        marks=points,
    )
