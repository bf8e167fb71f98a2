"""The monitoring time series, composed from `core.charts` and drawn by `core/_chart.html`: the judge's observed
pass rate with its exact (Clopper–Pearson) band and the corrected pass rate with its band from posterior draws, per
bucket. Pure functions.

Buckets without judged traces break the lines and bands, so a gap in traffic is never drawn as a straight line. A
corrected point whose estimate was clipped or whose draws were often dropped is marked (`chart-point-flagged`) and
its tooltip says why.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.charts import (
    QUARTERS,
    Band,
    Chart,
    Frame,
    Line,
    Linear,
    Mark,
    Marker,
    Rule,
    Slots,
    Tick,
    band,
    path,
    percent,
    ticks,
)
from monitoring.series import BucketStats

MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 16, 12, 34
PLOT_WIDTH, PLOT_HEIGHT = 800, 240
MAX_X_LABELS = 8


@dataclass(frozen=True)
class Series:
    name: str  # "observed" or "corrected": the suffix of its CSS classes
    line: str  # SVG path of the estimate, one sub-path per run of buckets with data
    band: str  # SVG path of the interval, one closed polygon per run
    points: list[Marker]  # with the interval's ends as low_y / high_y


@dataclass(frozen=True, kw_only=True)
class SeriesChart(Chart):
    observed: Series
    corrected: Series
    thresholds: list[Rule]


def _series(
    buckets: Sequence[BucketStats],
    slots: Slots,
    y_of: Linear,
    read: Callable[[BucketStats], tuple[float, float, float] | None],
    name: str,
    flags: Callable[[BucketStats], tuple[str, ...]] = lambda stats: (),
) -> Series:
    runs: list[list[Marker]] = [[]]
    for index, stats in enumerate(buckets):
        values = read(stats)
        if values is None:
            if runs[-1]:
                runs.append([])
            continue
        value, low, high = values
        warnings = flags(stats)
        runs[-1].append(
            Marker(
                x=slots.center(index),
                y=y_of(value),
                low_y=y_of(low),
                high_y=y_of(high),
                r=2.5,
                css_class=f"chart-point-{name}" + (" chart-point-flagged" if warnings else ""),
                title=f"{name} {percent(value)} ({percent(low)}–{percent(high)}), n = {stats.judged}, "
                f"{stats.start:%Y-%m-%d %H:%M}" + "".join(f"; {warning}" for warning in warnings),
            )
        )
    bands = [band([p.x for p in run], [p.low_y for p in run], [p.high_y for p in run]) for run in runs]
    return Series(
        name=name,
        line=path([(p.x, p.y) for p in run] for run in runs),
        band=path(bands, closed=True),
        points=[point for run in runs for point in run],
    )


def _observed(stats: BucketStats) -> tuple[float, float, float] | None:
    if stats.observed is None:
        return None
    return stats.observed, stats.observed_low or 0.0, stats.observed_high or 0.0


def _corrected(stats: BucketStats) -> tuple[float, float, float] | None:
    c = stats.corrected
    return None if c is None else (c.estimate, c.low, c.high)


def series_chart(
    buckets: Sequence[BucketStats], *, bucket: str, criterion: str, thresholds: Sequence[float] = ()
) -> SeriesChart:
    """The pass rates of `criterion` per `bucket` ("hour" or "day"), with a line at each alert threshold."""
    frame = Frame.around(
        PLOT_WIDTH, PLOT_HEIGHT, left=MARGIN_LEFT, top=MARGIN_TOP, right=MARGIN_RIGHT, bottom=MARGIN_BOTTOM
    )
    slots = Slots.across(frame.left, PLOT_WIDTH, len(buckets))
    y_of = Linear.vertical(frame, 0.0, 1.0, clamp=True)

    every = max(1, -(-len(buckets) // MAX_X_LABELS))
    label = "%m-%d %H:%M" if bucket == "hour" else "%Y-%m-%d"
    x_ticks = [Tick(i, slots.center(i), b.start.strftime(label)) for i, b in enumerate(buckets) if i % every == 0]
    rules = [
        Rule(y=y_of(t), css_class="chart-reference", title=f"threshold {percent(t)}") for t in sorted(set(thresholds))
    ]
    observed = _series(buckets, slots, y_of, _observed, "observed")
    corrected = _series(buckets, slots, y_of, _corrected, "corrected", lambda stats: stats.corrected_flags)
    # Bands under lines under dots, and the corrected rate under the observed one: with a good judge the two
    # nearly coincide, and the observed rate is the one measured.
    drawn = (corrected, observed)
    marks: list[Mark] = [Rule(y=frame.bottom, css_class="chart-axis"), *rules]
    marks += [Band(css_class=f"chart-band-{s.name}", d=s.band) for s in drawn if s.band]
    marks += [Line(css_class=f"chart-line-{s.name}", d=s.line) for s in drawn if s.line]
    marks += [point for s in drawn for point in s.points]
    return SeriesChart(
        frame=frame,
        title=f"Pass rate of {criterion} per {bucket}",
        title_id="series-title",
        empty=not any(b.judged for b in buckets),
        y_ticks=ticks(y_of, QUARTERS, percent),
        x_ticks=x_ticks,
        marks=marks,
        observed=observed,
        corrected=corrected,
        thresholds=rules,
    )
