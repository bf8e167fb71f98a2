"""The reliability chart: pass@k and pass^k against k, each with its 95% band, composed from `core.charts` and
drawn by `core/_chart.html`. No Django."""

from __future__ import annotations

from collections.abc import Sequence

from agents.reliability import KRow
from core.charts import QUARTERS, Band, Chart, Frame, Line, Linear, Mark, Marker, Rule, band, percent, points, ticks

LEFT, RIGHT, TOP = 52.0, 24.0, 16.0
PLOT_WIDTH, PLOT_HEIGHT = 560.0, 220.0
AXIS_SPACE = 40.0
# name (the CSS class of its marks), what a tooltip calls it, and where a row keeps its value and interval
CURVES = (
    ("pass_at_k", "pass@", lambda r: r.pass_at_k, lambda r: r.pass_at_k_ci),
    ("pass_hat_k", "pass^", lambda r: r.pass_hat_k, lambda r: r.pass_hat_k_ci),
)


def reliability_chart(rows: Sequence[KRow]) -> Chart:
    """Both curves over the k that have at least one task; x spans every row's k so the axis stays 1..max."""
    frame = Frame.around(PLOT_WIDTH, PLOT_HEIGHT, left=LEFT, top=TOP, right=RIGHT, bottom=AXIS_SPACE)
    x_for = Linear.horizontal(frame, 1, max((row.k for row in rows), default=1))
    y_for = Linear.vertical(frame, 0.0, 1.0, clamp=True)
    bands: list[Mark] = []
    curves: list[Mark] = []
    for name, symbol, value_of, ci_of in CURVES:
        measured = [(row.k, value_of(row), ci_of(row)) for row in rows]
        measured = [(k, value, ci) for k, value, ci in measured if value is not None and ci is not None]
        xs = [x_for(k) for k, _, _ in measured]
        lows = [y_for(low) for _, _, (low, _) in measured]
        highs = [y_for(high) for _, _, (_, high) in measured]
        bands.append(Band(css_class=f"chart-band {name}", points=points(band(xs, lows, highs))))
        dots = [
            Marker(
                x=x,
                y=y_for(value),
                css_class=f"chart-dot {name}",
                title=f"{symbol}{k} = {percent(value, 1)} (95% {percent(low, 1)}–{percent(high, 1)})",
            )
            for x, (k, value, (low, high)) in zip(xs, measured, strict=True)
        ]
        curves += [Line(css_class=f"chart-curve {name}", points=points((d.x, d.y) for d in dots)), *dots]
    return Chart(
        frame=frame,
        title=f"pass@k and pass^k for k = 1 to {len(rows)}",
        title_id="reliability-title",
        y_ticks=ticks(y_for, QUARTERS, percent),
        x_ticks=ticks(x_for, (row.k for row in rows), str),
        x_title="k (trials)",
        marks=[Rule(y=frame.bottom, css_class="chart-axis"), *bands, *curves],
    )
