"""The taxonomy charts: a Pareto chart of failure-mode counts and the saturation curve.

Pure functions, no Django: they compose `core.charts` primitives into charts that `core/_chart.html` draws, inside
`annotation/_pareto_chart.html` and `annotation/_saturation_chart.html`. Names are returned as plain text; the
template autoescapes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.charts import (
    Bar,
    Bars,
    Chart,
    Frame,
    Line,
    Linear,
    Marker,
    Rule,
    Slots,
    bar,
    count_axis,
    percent,
    plural,
    points,
    rounded,
    ticks,
    truncate_label,
)

# Layout, in SVG user units.
MARGIN_LEFT = 56
MARGIN_RIGHT = 52
MARGIN_TOP = 16
PLOT_HEIGHT = 220
PARETO_LABEL_SPACE = 118  # room under the bars for names rotated by LABEL_ANGLE
PARETO_PLOT_WIDTH = 760
SLOT_MIN, SLOT_MAX = 18.0, 72.0
BAR_FILL = 0.7  # share of a slot the bar covers
LABEL_ANGLE = -40
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


@dataclass(frozen=True, kw_only=True)
class ParetoBar(Bar):
    mode_id: int | None  # None for the "other modes" bar, which links nowhere
    name: str  # full name, for the tooltip; `label` is the name shortened to fit under the bar
    count: int
    cumulative_percent: float
    point_y: float  # where the cumulative line passes over this bar


@dataclass(frozen=True, kw_only=True)
class ParetoChart(Chart):
    bars: list[ParetoBar]
    line: Line  # the cumulative percent
    reference: Rule  # at REFERENCE_PERCENT
    total: int
    label_angle: int = LABEL_ANGLE


@dataclass(frozen=True, kw_only=True)
class SaturationMarker(Marker):
    reviewed: int
    modes: int


@dataclass(frozen=True, kw_only=True)
class SaturationChart(Chart):
    line: Line  # a path: the step line from the origin to the last reviewed trace
    markers: list[SaturationMarker]  # one per new mode, while there are few enough to show
    reviewed: int
    modes: int
    points: int  # how many points the path was drawn from (after downsampling)


def _sorted_counts(counts: Sequence[ModeCount]) -> list[ModeCount]:
    # The same order as taxonomy.failure_mode_counts, so the chart and the table agree on ties.
    return sorted(
        (c for c in counts if c.trace_count > 0),
        key=lambda c: (-c.trace_count, c.name.casefold(), c.name, c.id),
    )


def pareto_chart(
    counts: Sequence[ModeCount], *, max_bars: int = MAX_BARS, trace_list_url: str | None = None
) -> ParetoChart:
    """Bars of traces per failure mode, tallest first, with the cumulative share of all coded occurrences as a
    line. Modes with no traces are left out; with more than `max_bars` modes, the tail is one "other" bar. With
    `trace_list_url`, each mode's bar links to its traces there.

    The cumulative line is a share of the sum of the bars: a trace coded to two modes is in two bars, which is
    what a Pareto chart of causes shows. It ends at exactly 100%.
    """
    items = _sorted_counts(counts)
    rows: list[tuple[int | None, str, int]] = [(c.id, c.name, c.trace_count) for c in items]
    if len(rows) > max_bars:
        head, tail = rows[: max_bars - 1], rows[max_bars - 1 :]
        rows = [*head, (None, f"{len(tail)} other modes", sum(n for _, _, n in tail))]
    total = sum(n for _, _, n in rows)

    slot = min(SLOT_MAX, max(SLOT_MIN, PARETO_PLOT_WIDTH / max(1, len(rows))))
    # A rotated name reaches left of its bar; the first few may need room beyond the axis labels.
    reach = math.cos(math.radians(LABEL_ANGLE)) * LABEL_CHAR_WIDTH
    overhang = max(
        (
            len(truncate_label(name)) * reach - (MARGIN_LEFT + (index + 0.5) * slot)
            for index, (_, name, _) in enumerate(rows)
        ),
        default=0.0,
    )
    frame = Frame.around(
        max(slot * len(rows), 240.0),
        PLOT_HEIGHT,
        left=float(MARGIN_LEFT) + max(0.0, math.ceil(overhang)),
        top=MARGIN_TOP,
        right=MARGIN_RIGHT,
        bottom=PARETO_LABEL_SPACE,
    )
    slots = Slots(frame.left, slot)
    y_count, count_ticks = count_axis(frame.bottom, frame.top, max((n for _, _, n in rows), default=0))
    y_percent = Linear.vertical(frame, 0, 100)

    bars = []
    running = 0
    for index, (mode_id, name, n) in enumerate(rows):
        running += n
        # Integer arithmetic until the last step, so the final bar is exactly 100.0.
        cumulative = 100.0 if running == total else 100 * running / total
        bars.append(
            ParetoBar(
                **bar(slots, index, y_count, n, fill=BAR_FILL),
                title=f"{name}: {plural(n, 'trace')} · {rounded(cumulative)}% cumulative",
                href=f"{trace_list_url}?mode={mode_id}" if trace_list_url and mode_id else "",
                label=truncate_label(name),
                label_y=frame.bottom + 12,
                data=(("mode", mode_id or ""),),
                mode_id=mode_id,
                name=name,
                count=n,
                cumulative_percent=rounded(cumulative),
                point_y=y_percent(cumulative),
            )
        )
    line = Line(css_class="chart-line", points=points((b.center_x, b.point_y) for b in bars))
    reference = Rule(
        y=y_percent(REFERENCE_PERCENT),
        css_class="chart-reference",
        title=f"{percent(REFERENCE_PERCENT / 100)} of occurrences",
    )
    dots = [
        Marker(x=b.center_x, y=b.point_y, title=f"{b.cumulative_percent}% after {b.name}", css_class="chart-point")
        for b in bars
    ]
    return ParetoChart(
        frame=frame,
        title=f"Pareto chart of {plural(len(bars), 'failure mode')} over {plural(total, 'coded occurrence')}",
        title_id="pareto-title",
        empty=not bars,
        y_ticks=count_ticks,
        right_ticks=ticks(y_percent, range(0, 101, 20), lambda p: percent(p / 100)),
        y_title="traces",
        marks=[
            Bars(bars=bars, label_angle=LABEL_ANGLE),
            reference,
            line,
            *dots,
            Rule(y=frame.bottom, css_class="chart-axis"),
        ],
        bars=bars,
        line=line,
        reference=reference,
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
    frame = Frame.around(
        SATURATION_PLOT_WIDTH,
        PLOT_HEIGHT,
        left=MARGIN_LEFT,
        top=MARGIN_TOP,
        right=MARGIN_RIGHT,
        bottom=SATURATION_AXIS_SPACE,
    )
    x_for, x_ticks = count_axis(frame.left, frame.right, reviewed)
    y_for, y_ticks = count_axis(frame.bottom, frame.top, modes)

    commands = [f"M{x_for(0):g},{y_for(0):g}"] if pairs else []
    previous_modes = 0
    markers: list[SaturationMarker] = []
    for position, n in pairs:
        # Along at the old level up to this trace, then up to the new level: the curve is a step function.
        commands.append(f"H{x_for(position):g}")
        if n != previous_modes:
            commands.append(f"V{y_for(n):g}")
            if n > previous_modes:
                markers.append(
                    SaturationMarker(
                        x=x_for(position),
                        y=y_for(n),
                        title=f"{plural(n, 'mode')} by trace {position}",
                        css_class="chart-point",
                        reviewed=position,
                        modes=n,
                    )
                )
            previous_modes = n
    line = Line(css_class="chart-line chart-step", d=" ".join(commands))
    markers = markers if len(markers) <= SATURATION_MAX_MARKERS else []
    return SaturationChart(
        frame=frame,
        title=f"Saturation: {plural(modes, 'failure mode')} after {plural(reviewed, 'reviewed trace')}",
        title_id="saturation-title",
        empty=not pairs,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        y_title="failure modes",
        x_title="traces reviewed",
        marks=[Rule(y=frame.bottom, css_class="chart-axis"), line, *markers],
        line=line,
        markers=markers,
        reviewed=reviewed,
        modes=modes,
        points=len(pairs),
    )
