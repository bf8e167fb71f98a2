"""Chart primitives for the server-side SVG charts: a plot frame, scales and ticks, and the marks drawn on them.

Pure computation, no Django and no domain. A page's builder (`annotation/charts.py`, `judges/charts.py`, …) turns
its numbers into a `Chart` made of these primitives, and `templates/core/_chart.html` draws any `Chart`: the grid,
the tick labels and axis titles, then the marks in the order the builder lists them. Server-side SVG needs no
script (the CSP allows none inline) and no CDN, and htmx swaps it like any other markup.

Text (titles, tick labels, bar labels) is plain text here, never markup: escaping is the template's job, so names
from traces and labels reach the SVG only through Django's autoescaping.

Coordinates are SVG user units (the viewBox; the page scales the SVG to its container), rounded to 0.01.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

Pair = tuple[float, float]
# Extra `data-*` attributes of a mark, as (name, value) pairs: hooks for tests and scripts, not for looks.
Data = tuple[tuple[str, object], ...]

LABEL_MAX_CHARS = 22  # how long a label of 11px text under a bar may be


def rounded(value: float) -> float:
    return round(value, 2)


# Layout and scales -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """The plot area (`left`, `top`, `right`, `bottom`) inside an SVG of `width` × `height`; the margins around
    it hold the ticks and the axis titles."""

    left: float
    top: float
    right: float
    bottom: float
    width: float
    height: float

    @classmethod
    def around(
        cls, plot_width: float, plot_height: float, *, left: float, top: float, right: float, bottom: float
    ) -> Frame:
        """A plot of `plot_width` × `plot_height` with these margins around it."""
        return cls(
            left=left,
            top=top,
            right=rounded(left + plot_width),
            bottom=rounded(top + plot_height),
            width=rounded(left + plot_width + right),
            height=rounded(top + plot_height + bottom),
        )


@dataclass(frozen=True)
class Linear:
    """A linear scale from the domain [`low`, `high`] onto the pixels [`start`, `end`]; a vertical one runs from
    the plot's bottom up to its top, since SVG's y grows downwards. With `clamp`, a value outside the domain is
    drawn at its edge. A domain of one value maps it to the middle, so a single point is not drawn at an edge."""

    low: float
    high: float
    start: float
    end: float
    clamp: bool = False

    @classmethod
    def horizontal(cls, frame: Frame, low: float, high: float, *, clamp: bool = False) -> Linear:
        return cls(low, high, frame.left, frame.right, clamp)

    @classmethod
    def vertical(cls, frame: Frame, low: float, high: float, *, clamp: bool = False) -> Linear:
        return cls(low, high, frame.bottom, frame.top, clamp)

    def __call__(self, value: float) -> float:
        if self.high == self.low:
            return rounded((self.start + self.end) / 2)
        if self.clamp:
            value = min(max(value, self.low), self.high)
        return rounded(self.start + (self.end - self.start) * (value - self.low) / (self.high - self.low))


@dataclass(frozen=True)
class Slots:
    """Equal slots side by side from `start`, each `width` wide: one per bar, time bucket or version."""

    start: float
    width: float

    @classmethod
    def across(cls, start: float, span: float, count: int) -> Slots:
        """`count` slots sharing `span`; one slot fills it when there is nothing to place."""
        return cls(start, span / max(count, 1))

    def center(self, index: int) -> float:
        return rounded(self.start + self.width * (index + 0.5))


def nice_step(maximum: float, target_ticks: int = 5) -> float:
    """A step of 1, 2 or 5 × 10^k giving about `target_ticks` intervals up to `maximum`; never below 1, since the
    axes that use it count things."""
    if maximum <= target_ticks:
        return 1.0
    raw = maximum / target_ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    for multiple in (1, 2, 5, 10):
        step = multiple * magnitude
        if step >= raw:
            return float(step)
    return float(10 * magnitude)  # pragma: no cover - the loop always returns


def axis_top(maximum: float) -> tuple[float, float]:
    """(top, step): the end of an axis from 0 that holds `maximum`, a whole number of nice steps, at least one."""
    step = nice_step(maximum)
    return max(step, math.ceil(maximum / step) * step), step


QUARTERS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the ticks of an axis of rates


@dataclass(frozen=True)
class Tick:
    value: float
    position: float  # y on a vertical axis, x on a horizontal one
    label: str


def ticks(scale: Callable[[float], float], values: Iterable[float], label: Callable[[float], str]) -> list[Tick]:
    return [Tick(value=value, position=scale(value), label=label(value)) for value in values]


def count_axis(start: float, end: float, maximum: float) -> tuple[Linear, list[Tick]]:
    """A scale for counts from 0 up to a nice top that holds `maximum`, over the pixels [`start`, `end`], with a
    labelled tick at every step."""
    top, step = axis_top(maximum)
    scale = Linear(0, top, start, end)
    # Multiplied rather than summed, so no float drift skips the last tick.
    return scale, ticks(scale, (n * step for n in range(int(round(top / step)) + 1)), count)


# Marks: what is drawn on the plot, in the order a chart lists them ------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Rule:
    """A horizontal line across the plot: the x axis, a threshold, a target."""

    kind: ClassVar[str] = "rule"
    y: float
    css_class: str
    title: str = ""


@dataclass(frozen=True, kw_only=True)
class Bar:
    """A bar standing on the axis. With `href`, the bar and its label link there; `label` is drawn under the
    plot at `label_y`, rotated by its layer's angle."""

    x: float
    y: float
    width: float
    height: float
    title: str = ""
    href: str = ""
    label: str = ""
    label_y: float = 0.0
    data: Data = ()

    @property
    def center_x(self) -> float:
        return rounded(self.x + self.width / 2)


def bar(slots: Slots, index: int, scale: Linear, value: float, *, fill: float) -> dict[str, float]:
    """The geometry of a bar of `value` in slot `index`, covering `fill` of the slot's width and centred in it:
    keyword arguments for `Bar` (or a subclass that adds what the bar stands for)."""
    y, base = scale(value), scale(0)
    return {
        "x": rounded(slots.start + slots.width * (index + (1 - fill) / 2)),
        "y": y,
        "width": rounded(slots.width * fill),
        "height": rounded(base - y),
    }


@dataclass(frozen=True, kw_only=True)
class Bars:
    """A layer of bars; their labels are rotated by `label_angle` degrees so long names fit under narrow bars."""

    kind: ClassVar[str] = "bars"
    bars: Sequence[Bar]
    label_angle: float = 0


@dataclass(frozen=True, kw_only=True)
class Line:
    """A line through points: an SVG polyline (`points`), or a path (`d`) when it has gaps or steps."""

    kind: ClassVar[str] = "line"
    css_class: str
    points: str = ""
    d: str = ""


class Band(Line):
    """An interval drawn as an area between its highs and its lows: a polygon (`points`), or a path (`d`) of
    closed runs when it has gaps."""

    kind: ClassVar[str] = "band"


@dataclass(frozen=True, kw_only=True)
class Marker:
    """A dot with its tooltip. `low_y`/`high_y` are its interval; with `whisker` the dot and a line over the
    interval are drawn as one group carrying `css_class`, otherwise the dot carries it."""

    kind: ClassVar[str] = "marker"
    x: float
    y: float
    title: str
    css_class: str
    r: float = 3
    low_y: float | None = None
    high_y: float | None = None
    whisker: bool = False
    data: Data = ()


Mark = Rule | Bars | Line | Marker


@dataclass(frozen=True, kw_only=True)
class Chart:
    """One SVG chart as `templates/core/_chart.html` draws it: a frame, a title that names the chart for screen
    readers (`title_id` must be unique on the page), horizontal gridlines at the y ticks, tick labels left of the
    plot (`y_ticks`), right of it (`right_ticks`, a second axis without gridlines) and under it (`x_ticks`), the
    axis titles, then `marks` in order, later ones on top. An `empty` chart (no data to draw) is said in words
    instead."""

    frame: Frame
    title: str
    title_id: str
    empty: bool = False
    css_class: str = "chart-svg"
    y_ticks: Sequence[Tick] = ()
    x_ticks: Sequence[Tick] = ()
    right_ticks: Sequence[Tick] = ()
    y_title: str = ""
    x_title: str = ""
    marks: Sequence[Mark] = ()


# SVG geometry strings ---------------------------------------------------------------------------------------------


def _xy(pair: Pair) -> str:
    return f"{pair[0]:g},{pair[1]:g}"


def points(pairs: Iterable[Pair]) -> str:
    """An SVG `points` attribute: "x,y x,y …"."""
    return " ".join(_xy(pair) for pair in pairs)


def path(runs: Iterable[Sequence[Pair]], *, closed: bool = False) -> str:
    """An SVG path `d` with one sub-path per run of points, so a gap between runs is not drawn; `closed` closes
    each run into an area."""
    return " ".join("M" + " L".join(_xy(pair) for pair in run) + (" Z" if closed else "") for run in runs if run)


def band(xs: Sequence[float], lows: Sequence[float], highs: Sequence[float]) -> list[Pair]:
    """The outline of an interval band: along the highs left to right, then back along the lows."""
    return [*zip(xs, highs, strict=True), *reversed(list(zip(xs, lows, strict=True)))]


# Text ---------------------------------------------------------------------------------------------------------------


def fixed(value: float, digits: int) -> str:
    """`value` with `digits` decimals; a value that rounds to zero from below is "0.00", not "-0.00"."""
    return f"{round(value, digits) + 0.0:.{digits}f}"


def percent(share: float, digits: int = 0) -> str:
    """A share in [0, 1] as a percentage: 0.734 → "73%", or "73.4%" with one digit."""
    return fixed(share * 100, digits) + "%"


def count(value: float) -> str:
    """A count with thousands separators: 12000 → "12,000"."""
    return f"{int(value):,}"


def plural(n: int, noun: str) -> str:
    """A count in words, "1 trace" or "2 traces": the charts name only nouns whose plural takes an s."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


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
