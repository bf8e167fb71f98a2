"""SVG geometry for the taxonomy charts: a Pareto chart of failure-mode counts and the saturation curve.

Pure functions, no Django: they turn numbers into coordinates, and the templates
(`annotation/_pareto_chart.html`, `annotation/_saturation_chart.html`) only place them. The charts are server-side
SVG, so they need no script (the CSP allows none inline), no CDN, and htmx can swap them like any other markup.
Names are returned as plain text; the templates autoescape them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

# Layout, in SVG user units (the viewBox; the page scales the SVG to its container).
MARGIN_LEFT = 56
MARGIN_RIGHT = 52
MARGIN_TOP = 16
PLOT_HEIGHT = 220
PARETO_LABEL_SPACE = 118  # room under the bars for names rotated by LABEL_ANGLE
PARETO_PLOT_WIDTH = 760
SLOT_MIN, SLOT_MAX = 18.0, 72.0
BAR_FILL = 0.7  # share of a slot the bar covers
LABEL_ANGLE = -40
LABEL_MAX_CHARS = 22
LABEL_CHAR_WIDTH = 6.2  # average width of an 11px sans-serif character, to keep rotated names inside the SVG
# Beyond this many modes the tail becomes one "other" bar: a Pareto chart is read from the left, and a hundred
# 8-pixel bars help nobody.
MAX_BARS = 50
REFERENCE_PERCENT = 80.0

SATURATION_PLOT_WIDTH = 760
SATURATION_AXIS_SPACE = 40
SATURATION_MAX_POINTS = 500
# Above this many new-mode steps the dots would merge into a smear; the line alone says it.
SATURATION_MAX_MARKERS = 80


class ModeCount(Protocol):
    """What the Pareto chart needs of a count (taxonomy.FailureModeCount has it)."""

    @property
    def id(self) -> int: ...

    @property
    def name(self) -> str: ...

    @property
    def trace_count(self) -> int: ...


class CurvePoint(Protocol):
    """What the saturation chart needs of a point (taxonomy.SaturationPoint has it)."""

    @property
    def reviewed(self) -> int: ...

    @property
    def distinct_failure_modes(self) -> int: ...


@dataclass(frozen=True)
class Tick:
    value: float
    position: float  # y for a vertical axis, x for a horizontal one
    label: str


@dataclass(frozen=True)
class ParetoBar:
    mode_id: int | None  # None for the "other modes" bar, which links nowhere
    name: str  # full name, for the tooltip
    label: str  # the name shortened to fit under the bar
    count: int
    cumulative_percent: float
    x: float
    y: float
    width: float
    height: float
    center_x: float
    point_y: float  # where the cumulative line passes over this bar
    label_y: float


@dataclass(frozen=True)
class ParetoChart:
    width: float
    height: float
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    bars: list[ParetoBar]
    count_ticks: list[Tick]
    percent_ticks: list[Tick]
    reference_y: float
    reference_percent: float
    total: int
    label_angle: int = LABEL_ANGLE

    @property
    def line_points(self) -> str:
        """The cumulative-percent line as an SVG `points` attribute."""
        return " ".join(f"{bar.center_x:g},{bar.point_y:g}" for bar in self.bars)


@dataclass(frozen=True)
class SaturationMarker:
    x: float
    y: float
    reviewed: int
    modes: int


@dataclass(frozen=True)
class SaturationChart:
    width: float
    height: float
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    path: str  # an SVG path `d`: the step line from the origin to the last reviewed trace
    markers: list[SaturationMarker]  # one per new mode, while there are few enough to show
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    reviewed: int
    modes: int
    points: int  # how many points the path was drawn from (after downsampling)


def _round(value: float) -> float:
    return round(value, 2)


def truncate_label(name: str, limit: int = LABEL_MAX_CHARS) -> str:
    """One line of at most `limit` characters, cut at a word boundary when one is near the end."""
    name = " ".join(name.split())
    if len(name) <= limit:
        return name
    cut = name[: limit - 1]
    space = cut.rfind(" ")
    if space >= limit // 2:
        cut = cut[:space]
    return cut.rstrip(" -–—,;:") + "…"


def nice_step(maximum: float, target_ticks: int = 5) -> float:
    """A step of 1, 2 or 5 × 10^k giving about `target_ticks` intervals up to `maximum`; never below 1, since the
    axes count traces and modes."""
    if maximum <= target_ticks:
        return 1.0
    raw = maximum / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        step = multiple * magnitude
        if step >= raw:
            return float(step)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def _axis_top(maximum: float) -> tuple[float, float]:
    step = nice_step(maximum)
    top = max(step, math.ceil(maximum / step) * step)
    return top, step


def _count_label(value: float) -> str:
    return f"{int(value):,}"


def _ticks(maximum: float, step: float, place: Callable[[float], float]) -> list[Tick]:
    """Ticks at 0, step, 2·step … maximum; multiplied rather than summed so no float drift skips the last."""
    return [
        Tick(value=n * step, position=place(n * step), label=_count_label(n * step))
        for n in range(int(round(maximum / step)) + 1)
    ]


def _sorted_counts(counts: Sequence[ModeCount]) -> list[ModeCount]:
    # The same order as taxonomy.failure_mode_counts, so the chart and the table agree on ties.
    return sorted(
        (c for c in counts if c.trace_count > 0),
        key=lambda c: (-c.trace_count, c.name.casefold(), c.name, c.id),
    )


def pareto_chart(counts: Sequence[ModeCount], *, max_bars: int = MAX_BARS) -> ParetoChart:
    """Bars of traces per failure mode, tallest first, with the cumulative share of all coded occurrences as a
    line. Modes with no traces are left out; with more than `max_bars` modes, the tail is one "other" bar.

    The cumulative line is a share of the sum of the bars: a trace coded to two modes is in two bars, which is
    what a Pareto chart of causes shows. It ends at exactly 100%.
    """
    items = _sorted_counts(counts)
    rows: list[tuple[int | None, str, int]] = [(c.id, c.name, c.trace_count) for c in items]
    if len(rows) > max_bars:
        head, tail = rows[: max_bars - 1], rows[max_bars - 1 :]
        rows = [*head, (None, f"{len(tail)} other modes", sum(count for _, _, count in tail))]
    total = sum(count for _, _, count in rows)

    slot = min(SLOT_MAX, max(SLOT_MIN, PARETO_PLOT_WIDTH / max(1, len(rows))))
    plot_width = max(slot * len(rows), 240.0)
    top, bottom = float(MARGIN_TOP), float(MARGIN_TOP + PLOT_HEIGHT)
    # A rotated name reaches left of its bar; the first few may need room beyond the axis labels.
    reach = math.cos(math.radians(LABEL_ANGLE)) * LABEL_CHAR_WIDTH
    overhang = max(
        (
            len(truncate_label(name)) * reach - (MARGIN_LEFT + (index + 0.5) * slot)
            for index, (_, name, _) in enumerate(rows)
        ),
        default=0.0,
    )
    left = float(MARGIN_LEFT) + max(0.0, math.ceil(overhang))
    right = left + plot_width
    axis_max, step = _axis_top(max((count for _, _, count in rows), default=0))

    def y_for_count(value: float) -> float:
        return _round(bottom - PLOT_HEIGHT * value / axis_max)

    def y_for_percent(percent: float) -> float:
        return _round(bottom - PLOT_HEIGHT * percent / 100)

    bars = []
    running = 0
    for index, (mode_id, name, count) in enumerate(rows):
        running += count
        # Integer arithmetic until the last step, so the final bar is exactly 100.0.
        cumulative = 100.0 if running == total else 100 * running / total
        x = left + index * slot + slot * (1 - BAR_FILL) / 2
        y = y_for_count(count)
        bars.append(
            ParetoBar(
                mode_id=mode_id,
                name=name,
                label=truncate_label(name),
                count=count,
                cumulative_percent=_round(cumulative),
                x=_round(x),
                y=y,
                width=_round(slot * BAR_FILL),
                height=_round(bottom - y),
                center_x=_round(left + (index + 0.5) * slot),
                point_y=y_for_percent(cumulative),
                label_y=_round(bottom + 12),
            )
        )

    count_ticks = _ticks(axis_max, step, y_for_count)
    percent_ticks = [Tick(value=p, position=y_for_percent(p), label=f"{p}%") for p in range(0, 101, 20)]
    return ParetoChart(
        width=_round(right + MARGIN_RIGHT),
        height=float(MARGIN_TOP + PLOT_HEIGHT + PARETO_LABEL_SPACE),
        plot_left=left,
        plot_right=_round(right),
        plot_top=top,
        plot_bottom=bottom,
        bars=bars,
        count_ticks=count_ticks,
        percent_ticks=percent_ticks,
        reference_y=y_for_percent(REFERENCE_PERCENT),
        reference_percent=REFERENCE_PERCENT,
        total=total,
    )


# Saturation -----------------------------------------------------------------------------------------------------


def downsample_curve(points: Sequence[CurvePoint], limit: int = SATURATION_MAX_POINTS) -> list[tuple[int, int]]:
    """The curve as (reviewed, modes) pairs, at most `limit` of them, from which a step line redraws it exactly.

    The curve is a step function that rises only where a trace brought a new mode, so the first point, every
    such step and the last point are all a step line needs; every step is kept. Only when there are more steps
    than `limit` allows do neighbouring steps merge: the x range is cut into equal buckets and the last point of
    each survives, which keeps the curve's upper envelope and its end.
    """
    if not points:
        return []
    kept: list[tuple[int, int]] = [(points[0].reviewed, points[0].distinct_failure_modes)]
    previous = points[0].distinct_failure_modes
    for point in points[1:]:
        if point.distinct_failure_modes != previous:
            kept.append((point.reviewed, point.distinct_failure_modes))
            previous = point.distinct_failure_modes
    last = (points[-1].reviewed, points[-1].distinct_failure_modes)
    if kept[-1] != last:
        kept.append(last)
    if len(kept) <= limit:
        return kept
    first_x, last_x = kept[0][0], kept[-1][0]
    buckets = limit - 1  # the first point keeps a bucket of its own
    span = max(1, last_x - first_x)
    by_bucket: dict[int, tuple[int, int]] = {}
    for pair in kept[1:]:
        bucket = min(buckets - 1, (pair[0] - first_x) * buckets // (span + 1))
        by_bucket[bucket] = pair  # later points overwrite: the last of each bucket survives
    return [kept[0], *(by_bucket[b] for b in sorted(by_bucket))]


def saturation_chart(points: Sequence[CurvePoint], *, limit: int = SATURATION_MAX_POINTS) -> SaturationChart:
    """The saturation curve, distinct failure modes against traces reviewed, as a step line from the origin.

    A flattening line is the signal to stop collecting new failure modes; a steep end means keep reviewing.
    """
    pairs = downsample_curve(points, limit)
    reviewed = pairs[-1][0] if pairs else 0
    modes = pairs[-1][1] if pairs else 0
    top, bottom = float(MARGIN_TOP), float(MARGIN_TOP + PLOT_HEIGHT)
    left, right = float(MARGIN_LEFT), float(MARGIN_LEFT + SATURATION_PLOT_WIDTH)
    x_max, x_step = _axis_top(reviewed)
    y_max, y_step = _axis_top(modes)

    def x_for(value: float) -> float:
        return _round(left + SATURATION_PLOT_WIDTH * value / x_max)

    def y_for(value: float) -> float:
        return _round(bottom - PLOT_HEIGHT * value / y_max)

    commands = [f"M{x_for(0):g},{y_for(0):g}"] if pairs else []
    previous_modes = 0
    steps: list[SaturationMarker] = []
    for position, count in pairs:
        # Along at the old level up to this trace, then up to the new level: the curve is a step function.
        commands.append(f"H{x_for(position):g}")
        if count != previous_modes:
            commands.append(f"V{y_for(count):g}")
            if count > previous_modes:
                steps.append(SaturationMarker(x=x_for(position), y=y_for(count), reviewed=position, modes=count))
            previous_modes = count

    return SaturationChart(
        width=right + MARGIN_RIGHT,
        height=float(MARGIN_TOP + PLOT_HEIGHT + SATURATION_AXIS_SPACE),
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        path=" ".join(commands),
        markers=steps if len(steps) <= SATURATION_MAX_MARKERS else [],
        x_ticks=_ticks(x_max, x_step, x_for),
        y_ticks=_ticks(y_max, y_step, y_for),
        reviewed=reviewed,
        modes=modes,
        points=len(pairs),
    )
