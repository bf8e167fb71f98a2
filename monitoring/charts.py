"""SVG geometry for the monitoring time series (server-side, like annotation/charts.py): the judge's observed pass
rate with its Wilson band and the corrected pass rate with its bootstrap band, per bucket. Pure functions.

Buckets without judged traces break the lines and bands, so a gap in traffic is never drawn as a straight line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from monitoring.series import BucketStats

MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 16, 12, 34
PLOT_WIDTH, PLOT_HEIGHT = 800, 240
MAX_X_LABELS = 8


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    low_y: float
    high_y: float
    title: str


@dataclass(frozen=True)
class Series:
    line: str  # SVG path of the estimate, one sub-path per run of buckets with data
    band: str  # SVG path of the interval, one closed polygon per run
    points: list[Point] = field(default_factory=list)


@dataclass(frozen=True)
class Threshold:
    y: float
    label: str


@dataclass(frozen=True)
class SeriesChart:
    width: int
    height: int
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    observed: Series
    corrected: Series
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    thresholds: list[Threshold]
    has_data: bool


def _f(value: float) -> str:
    return f"{value:.1f}"


def _series(
    buckets: Sequence[BucketStats],
    x_of: Callable[[int], float],
    y_of: Callable[[float], float],
    read: Callable[[BucketStats], tuple[float, float, float] | None],
    name: str,
) -> Series:
    runs: list[list[tuple[float, float, float, float]]] = [[]]
    points = []
    for index, stats in enumerate(buckets):
        values = read(stats)
        if values is None:
            if runs[-1]:
                runs.append([])
            continue
        value, low, high = values
        x = x_of(index)
        runs[-1].append((x, y_of(value), y_of(low), y_of(high)))
        points.append(
            Point(
                x=x,
                y=y_of(value),
                low_y=y_of(low),
                high_y=y_of(high),
                title=f"{name} {value:.0%} ({low:.0%}–{high:.0%}), n = {stats.judged}, {stats.start:%Y-%m-%d %H:%M}",
            )
        )
    line, band = [], []
    for run in runs:
        if not run:
            continue
        line.append("M" + " L".join(f"{_f(x)} {_f(y)}" for x, y, _, _ in run))
        upper = [f"{_f(x)} {_f(high)}" for x, _, _, high in run]
        lower = [f"{_f(x)} {_f(low)}" for x, _, low, _ in reversed(run)]
        band.append("M" + " L".join(upper + lower) + " Z")
    return Series(line=" ".join(line), band=" ".join(band), points=points)


def series_chart(buckets: Sequence[BucketStats], *, bucket: str, thresholds: Sequence[float] = ()) -> SeriesChart:
    left, top = MARGIN_LEFT, MARGIN_TOP
    right, bottom = left + PLOT_WIDTH, top + PLOT_HEIGHT
    count = max(1, len(buckets))
    slot = PLOT_WIDTH / count

    def x_of(index: int) -> float:
        return left + slot * (index + 0.5)

    def y_of(rate: float) -> float:
        return bottom - min(max(rate, 0.0), 1.0) * PLOT_HEIGHT

    def observed(stats: BucketStats) -> tuple[float, float, float] | None:
        if stats.observed is None:
            return None
        return stats.observed, stats.observed_low or 0.0, stats.observed_high or 0.0

    def corrected(stats: BucketStats) -> tuple[float, float, float] | None:
        c = stats.corrected
        return None if c is None else (c.estimate, c.low, c.high)

    every = max(1, -(-len(buckets) // MAX_X_LABELS))
    label = "%m-%d %H:%M" if bucket == "hour" else "%Y-%m-%d"
    x_ticks = [Tick(x_of(i), b.start.strftime(label)) for i, b in enumerate(buckets) if i % every == 0]
    return SeriesChart(
        width=int(right + MARGIN_RIGHT),
        height=int(bottom + MARGIN_BOTTOM),
        plot_left=left,
        plot_right=right,
        plot_top=top,
        plot_bottom=bottom,
        observed=_series(buckets, x_of, y_of, observed, "observed"),
        corrected=_series(buckets, x_of, y_of, corrected, "corrected"),
        y_ticks=[Tick(y_of(v / 100), f"{v}%") for v in (0, 25, 50, 75, 100)],
        x_ticks=x_ticks,
        thresholds=[Threshold(y_of(t), f"{t:.0%}") for t in sorted(set(thresholds))],
        has_data=any(b.judged for b in buckets),
    )
