"""Chart geometry, without a database: the Pareto chart of failure-mode counts and the saturation curve."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import pytest

from annotation.charts import MAX_BARS, SATURATION_MAX_POINTS, downsample_curve, pareto_chart, saturation_chart
from annotation.taxonomy import SaturationPoint, saturation_points
from core.charts import LABEL_MAX_CHARS, nice_step, truncate_label


@dataclass(frozen=True)
class Count:
    id: int
    name: str
    trace_count: int


def counts(*pairs: tuple[str, int]) -> list[Count]:
    return [Count(id=index, name=name, trace_count=n) for index, (name, n) in enumerate(pairs, start=1)]


# Pareto ---------------------------------------------------------------------------------------------------------


def test_pareto_of_no_modes_has_no_bars_and_a_usable_axis():
    chart = pareto_chart([])
    assert chart.bars == []
    assert chart.total == 0
    assert chart.line.points == ""
    assert [t.label for t in chart.y_ticks] == ["0", "1"]
    assert chart.frame.width > chart.frame.right > chart.frame.left


def test_pareto_leaves_out_modes_without_traces():
    chart = pareto_chart(counts(("used", 3), ("unused", 0)))
    assert [bar.name for bar in chart.bars] == ["used"]


def test_pareto_of_one_mode_is_one_full_bar_at_100_percent():
    chart = pareto_chart(counts(("Wrong refund amount", 7)))
    (bar,) = chart.bars
    assert bar.count == 7
    assert bar.cumulative_percent == 100.0
    assert bar.point_y == chart.frame.top  # 100% is the top of the plot
    assert bar.mode_id == 1
    assert bar.y + bar.height == chart.frame.bottom
    # The count axis reaches at least the bar, and the bar's top sits at its value on that axis.
    top_tick = chart.y_ticks[-1]
    assert top_tick.value >= 7
    span = chart.frame.bottom - chart.frame.top
    assert bar.height == pytest.approx(span * 7 / top_tick.value, abs=0.01)


def test_pareto_sorts_descending_and_cumulates_to_exactly_100():
    chart = pareto_chart(counts(("b", 1), ("a", 5), ("c", 3), ("d", 1)))
    assert [bar.name for bar in chart.bars] == ["a", "c", "b", "d"]
    assert [bar.cumulative_percent for bar in chart.bars] == [50.0, 80.0, 90.0, 100.0]
    assert chart.bars[-1].cumulative_percent == 100.0
    heights = [bar.height for bar in chart.bars]
    assert heights == sorted(heights, reverse=True)
    # The cumulative line climbs (y decreases) and the bars run left to right without overlapping.
    ys = [bar.point_y for bar in chart.bars]
    assert ys == sorted(ys, reverse=True)
    for left_bar, right_bar in zip(chart.bars, chart.bars[1:], strict=False):
        assert left_bar.x + left_bar.width < right_bar.x
    assert chart.line.points.count(",") == 4


def test_pareto_breaks_ties_by_name_like_the_counts_table():
    chart = pareto_chart(counts(("zeta", 2), ("Alpha", 2), ("beta", 2), ("top", 9)))
    assert [bar.name for bar in chart.bars] == ["top", "Alpha", "beta", "zeta"]
    assert chart.bars[1].height == chart.bars[2].height == chart.bars[3].height


def test_pareto_reference_line_sits_at_80_percent():
    chart = pareto_chart(counts(("a", 4), ("b", 1)))
    span = chart.frame.bottom - chart.frame.top
    assert chart.reference.y == pytest.approx(chart.frame.bottom - 0.8 * span)
    assert chart.bars[0].point_y == chart.reference.y  # a is exactly 80% of 5
    assert [t.label for t in chart.right_ticks] == ["0%", "20%", "40%", "60%", "80%", "100%"]


def test_pareto_of_40_modes_fits_every_bar_inside_the_plot():
    rng = random.Random(40)
    data = [
        Count(id=i, name=f"mode number {i} with a rather long name", trace_count=rng.randint(1, 500)) for i in range(40)
    ]
    chart = pareto_chart(data)
    assert len(chart.bars) == 40
    assert sum(bar.count for bar in chart.bars) == chart.total == sum(c.trace_count for c in data)
    for bar in chart.bars:
        assert chart.frame.left <= bar.x and bar.x + bar.width <= chart.frame.right
        assert chart.frame.top <= bar.y <= chart.frame.bottom
        assert len(bar.label) <= LABEL_MAX_CHARS
        assert bar.label.endswith("…")
    percents = [bar.cumulative_percent for bar in chart.bars]
    assert percents == sorted(percents) and percents[-1] == 100.0
    assert chart.y_ticks[-1].value >= max(bar.count for bar in chart.bars)
    # Rotated names start left of their bar; the first one still ends inside the picture.
    first = chart.bars[0]
    reach = len(first.label) * 6.2 * math.cos(math.radians(chart.label_angle))
    assert first.center_x - reach >= 0


def test_pareto_folds_a_long_tail_into_one_unlinked_bar():
    data = [Count(id=i, name=f"m{i:03}", trace_count=1000 - i) for i in range(MAX_BARS + 10)]
    chart = pareto_chart(data)
    assert len(chart.bars) == MAX_BARS
    other = chart.bars[-1]
    assert other.mode_id is None
    assert other.name == "11 other modes"
    assert other.count == sum(1000 - i for i in range(MAX_BARS - 1, MAX_BARS + 10))
    assert chart.total == sum(c.trace_count for c in data)
    assert other.cumulative_percent == 100.0


def test_labels_are_truncated_at_a_word_and_names_stay_plain_text():
    assert truncate_label("Short") == "Short"
    assert truncate_label("  spaces   inside\nname ") == "spaces inside name"
    long = truncate_label("Hallucinated refund policy details for premium tier")
    assert long == "Hallucinated refund…" and len(long) <= LABEL_MAX_CHARS
    assert truncate_label("x" * 40) == "x" * (LABEL_MAX_CHARS - 1) + "…"
    chart = pareto_chart(counts(("<script>alert(1)</script>", 2)))
    assert chart.bars[0].name == "<script>alert(1)</script>"  # escaping is the template's job, not altered here


@pytest.mark.parametrize(
    ("maximum", "step"),
    [(0, 1), (3, 1), (5, 1), (7, 2), (12, 5), (40, 10), (99, 20), (230, 50), (1_000_000, 200_000)],
)
def test_nice_step(maximum, step):
    assert nice_step(maximum) == step


# Saturation -----------------------------------------------------------------------------------------------------


def curve(values: list[int]) -> list[SaturationPoint]:
    return [SaturationPoint(reviewed=i, distinct_failure_modes=v) for i, v in enumerate(values, start=1)]


def test_saturation_of_nothing_reviewed_is_an_empty_chart():
    chart = saturation_chart([])
    assert chart.line.d == ""
    assert chart.points == 0 and chart.reviewed == 0 and chart.modes == 0
    assert chart.markers == []


def test_saturation_draws_a_step_line_from_the_origin():
    chart = saturation_chart(curve([0, 1, 1, 3, 3]))
    assert chart.reviewed == 5 and chart.modes == 3
    # Start at the origin, along to trace 2, up to 1, along to trace 4, up to 3, along to the end.
    commands = chart.line.d.split()
    assert commands[0] == f"M{chart.frame.left:g},{chart.frame.bottom:g}"
    kinds = [c[0] for c in commands]
    assert kinds == ["M", "H", "H", "V", "H", "V", "H"]
    assert [(m.reviewed, m.modes) for m in chart.markers] == [(2, 1), (4, 3)]
    assert chart.markers[-1].y == chart.frame.top  # 3 modes is the top of a 0–3 axis
    assert chart.markers[-1].x == chart.x_ticks[4].position  # trace 4 on a 0–5 axis


def test_downsampling_keeps_every_new_mode_step_and_the_end():
    rng = random.Random(7)
    n = 100_000
    step_at = sorted(rng.sample(range(1, n + 1), 60))
    points = saturation_points(range(1, n + 1), step_at)
    kept = downsample_curve(points)
    assert len(kept) <= SATURATION_MAX_POINTS
    expected_steps = {(p.reviewed, p.distinct_failure_modes) for p in points if p.reviewed in set(step_at)}
    assert expected_steps <= set(kept)
    assert kept[0] == (1, points[0].distinct_failure_modes)
    assert kept[-1] == (n, 60)
    chart = saturation_chart(points)
    assert chart.points == len(kept)
    assert len(chart.markers) == 60


def test_downsampling_many_steps_stays_within_the_limit_and_monotone():
    points = curve(list(range(1, 2001)))  # a new mode on every one of 2,000 traces
    kept = downsample_curve(points, limit=500)
    assert len(kept) <= 500
    assert kept[0] == (1, 1) and kept[-1] == (2000, 2000)
    assert [r for r, _ in kept] == sorted({r for r, _ in kept})
    assert [m for _, m in kept] == sorted(m for _, m in kept)
    chart = saturation_chart(points)
    assert chart.markers == []  # too many to draw as dots
    assert chart.modes == 2000


def test_a_flat_curve_keeps_just_its_ends():
    assert downsample_curve(curve([2] * 1000)) == [(1, 2), (1000, 2)]
