"""SVG geometry of the reliability chart: pass@k and pass^k against k, each with its 95% band. No Django.

Server-side SVG like annotation/charts.py: no script, no CDN; the template only places these coordinates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agents.reliability import KRow

LEFT, RIGHT, TOP = 52.0, 24.0, 16.0
PLOT_WIDTH, PLOT_HEIGHT = 560.0, 220.0
AXIS_SPACE = 40.0


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Point:
    k: int
    x: float
    y: float
    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Curve:
    name: str  # "pass_at_k" / "pass_hat_k", the CSS class
    line: str  # SVG `points` of the estimates
    band: str  # SVG `points` of the interval polygon: the highs left to right, then the lows back
    points: list[Point]


@dataclass(frozen=True)
class ReliabilityChart:
    width: float
    height: float
    plot_left: float
    plot_right: float
    plot_top: float
    plot_bottom: float
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    curves: list[Curve]

    @property
    def empty(self) -> bool:
        return not any(curve.points for curve in self.curves)


def _fmt(pairs: Sequence[tuple[float, float]]) -> str:
    return " ".join(f"{x:g},{y:g}" for x, y in pairs)


def reliability_chart(rows: Sequence[KRow]) -> ReliabilityChart:
    """Both curves over the k that have at least one task; x spans every row's k so the axis stays 1..max."""
    max_k = max((row.k for row in rows), default=1)
    bottom = TOP + PLOT_HEIGHT

    def x_for(k: int) -> float:
        return round(LEFT + (PLOT_WIDTH * (k - 1) / (max_k - 1) if max_k > 1 else PLOT_WIDTH / 2), 2)

    def y_for(value: float) -> float:
        return round(bottom - PLOT_HEIGHT * min(max(value, 0.0), 1.0), 2)

    curves = []
    for name, value_of, ci_of in (
        ("pass_at_k", lambda r: r.pass_at_k, lambda r: r.pass_at_k_ci),
        ("pass_hat_k", lambda r: r.pass_hat_k, lambda r: r.pass_hat_k_ci),
    ):
        points = [
            Point(
                k=row.k,
                x=x_for(row.k),
                y=y_for(value_of(row)),
                value=value_of(row),
                low=ci_of(row)[0],
                high=ci_of(row)[1],
            )
            for row in rows
            if value_of(row) is not None and ci_of(row) is not None
        ]
        upper = [(p.x, y_for(p.high)) for p in points]
        lower = [(p.x, y_for(p.low)) for p in reversed(points)]
        curves.append(
            Curve(name=name, line=_fmt([(p.x, p.y) for p in points]), band=_fmt(upper + lower), points=points)
        )
    return ReliabilityChart(
        width=LEFT + PLOT_WIDTH + RIGHT,
        height=TOP + PLOT_HEIGHT + AXIS_SPACE,
        plot_left=LEFT,
        plot_right=LEFT + PLOT_WIDTH,
        plot_top=TOP,
        plot_bottom=bottom,
        x_ticks=[Tick(position=x_for(row.k), label=str(row.k)) for row in rows],
        y_ticks=[Tick(position=y_for(v / 4), label=f"{v * 25}%") for v in range(5)],
        curves=curves,
    )
