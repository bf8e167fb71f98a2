"""The chart primitives, without a database: frames, scales and ticks, marks placed where the numbers say, the
SVG strings, the text formats, and the shared template that draws a chart and escapes every text in it."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string

from core import charts

FRAME = charts.Frame.around(400, 200, left=50, top=10, right=20, bottom=30)


# Layout and scales ------------------------------------------------------------------------------------------------


def test_a_frame_puts_the_plot_inside_its_margins():
    assert (FRAME.left, FRAME.top, FRAME.right, FRAME.bottom) == (50, 10, 450, 210)
    assert (FRAME.width, FRAME.height) == (470, 240)


def test_a_vertical_scale_runs_from_the_bottom_up():
    y = charts.Linear.vertical(FRAME, 0, 1)
    assert (y(0), y(0.5), y(1)) == (210, 110, 10)
    assert y(2) == -190  # unclamped: a count scale never sees a value above its top


def test_a_horizontal_scale_runs_left_to_right_and_rounds_to_hundredths():
    x = charts.Linear.horizontal(FRAME, 0, 3)
    assert (x(0), x(3)) == (50, 450)
    assert x(1) == 183.33


def test_a_clamped_scale_draws_values_outside_its_domain_at_the_edge():
    y = charts.Linear.vertical(FRAME, -0.2, 1.0, clamp=True)
    assert y(-0.5) == y(-0.2) == 210
    assert y(1.7) == y(1.0) == 10
    assert y(0.4) == 110


def test_a_scale_of_one_value_puts_it_in_the_middle():
    x = charts.Linear.horizontal(FRAME, 1, 1)
    assert x(1) == 250


def test_slots_split_a_span_evenly_and_one_slot_fills_it_when_empty():
    slots = charts.Slots.across(50, 400, 4)
    assert slots.width == 100
    assert [slots.center(i) for i in range(4)] == [100, 200, 300, 400]
    assert charts.Slots.across(50, 400, 0).center(0) == 250


@pytest.mark.parametrize(
    ("maximum", "top", "step"),
    [(0, 1, 1), (1, 1, 1), (5, 5, 1), (7, 8, 2), (12, 15, 5), (40, 40, 10), (41, 50, 10), (12_000, 15_000, 5_000)],
)
def test_axis_top_is_a_whole_number_of_nice_steps_holding_the_maximum(maximum, top, step):
    assert charts.axis_top(maximum) == (top, step)


def test_a_count_axis_has_a_labelled_tick_at_every_step_up_to_its_top():
    scale, axis = charts.count_axis(FRAME.bottom, FRAME.top, 12_000)
    assert [t.label for t in axis] == ["0", "5,000", "10,000", "15,000"]
    assert [t.position for t in axis] == [210, 143.33, 76.67, 10]
    assert scale(12_000) == 50
    _, small = charts.count_axis(FRAME.left, FRAME.right, 0)
    assert [(t.value, t.position) for t in small] == [(0, 50), (1, 450)]


def test_ticks_sit_where_their_scale_puts_their_values():
    y = charts.Linear.vertical(FRAME, 0, 1)
    assert charts.ticks(y, (0, 0.25, 1), charts.percent) == [
        charts.Tick(value=0, position=210, label="0%"),
        charts.Tick(value=0.25, position=160, label="25%"),
        charts.Tick(value=1, position=10, label="100%"),
    ]


# Marks -----------------------------------------------------------------------------------------------------------


def test_a_bar_stands_on_zero_centred_in_its_slot():
    y = charts.Linear.vertical(FRAME, 0, 10)
    slots = charts.Slots(50, 40)
    geometry = charts.bar(slots, 2, y, 5, fill=0.5)
    assert geometry == {"x": 140, "y": 110, "width": 20, "height": 100}
    assert charts.Bar(**geometry).center_x == slots.center(2) == 150
    flat = charts.bar(slots, 0, y, 0, fill=0.5)
    assert flat["y"] == FRAME.bottom and flat["height"] == 0


def test_points_and_paths_are_svg_coordinate_lists():
    assert charts.points([(1.5, 2.0), (3.0, 4.25)]) == "1.5,2 3,4.25"
    assert charts.points([]) == ""
    # One sub-path per run: a gap between runs is left undrawn, and empty runs draw nothing.
    assert charts.path([[(0, 1), (2, 3)], [], [(5, 6)]]) == "M0,1 L2,3 M5,6"
    assert charts.path([[(0, 1), (2, 3)]], closed=True) == "M0,1 L2,3 Z"
    assert charts.path([]) == ""


def test_a_band_runs_along_the_highs_and_back_along_the_lows():
    outline = charts.band([10, 20, 30], lows=[9, 8, 7], highs=[1, 2, 3])
    assert outline == [(10, 1), (20, 2), (30, 3), (30, 7), (20, 8), (10, 9)]
    assert charts.band([], [], []) == []


# Text ------------------------------------------------------------------------------------------------------------


def test_numbers_are_formatted_without_a_negative_zero():
    assert charts.percent(0.734) == "73%" and charts.percent(0.734, 1) == "73.4%" and charts.percent(1) == "100%"
    assert charts.percent(-0.0001, 1) == "0.0%"
    assert charts.fixed(-0.0004, 3) == "0.000" and charts.fixed(0.5, 2) == "0.50"
    assert charts.count(12_000) == "12,000" and charts.count(3.0) == "3"
    assert [charts.plural(n, "trace") for n in (0, 1, 2)] == ["0 traces", "1 trace", "2 traces"]


def test_labels_are_cut_at_a_word_near_the_limit_and_stay_plain_text():
    assert charts.truncate_label("Wrong refund amount for premium tier", 22) == "Wrong refund amount…"
    assert charts.truncate_label("<script>alert(1)</script>", 40) == "<script>alert(1)</script>"


# The shared template ---------------------------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script>'


def _chart(**overrides) -> charts.Chart:
    y = charts.Linear.vertical(FRAME, 0, 1)
    defaults = {
        "frame": FRAME,
        "title": f"Chart of {HOSTILE}",
        "title_id": "test-title",
        "y_ticks": charts.ticks(y, (0, 1), lambda v: f"{HOSTILE}{v}"),
        "x_ticks": [charts.Tick(0, 100, HOSTILE)],
        "right_ticks": [charts.Tick(1, 10, HOSTILE)],
        "y_title": HOSTILE,
        "x_title": HOSTILE,
        "marks": [
            charts.Bars(
                bars=[
                    charts.Bar(
                        x=60, y=110, width=20, height=100, title=HOSTILE, href='/t/?mode=1&x="y"', label=HOSTILE
                    ),
                    charts.Bar(x=90, y=60, width=20, height=150, title="plain", data=(("mode", HOSTILE),)),
                ],
                label_angle=-40,
            ),
            charts.Band(css_class="chart-band", points="1,2 3,4 3,5"),
            charts.Band(css_class="chart-band-gap", d="M1,2 L3,4 Z"),
            charts.Line(css_class="chart-line", points="1,2 3,4"),
            charts.Line(css_class="chart-step", d="M1,2 H3"),
            charts.Rule(y=50, css_class="chart-reference", title=HOSTILE),
            charts.Marker(x=70, y=110, title=HOSTILE, css_class="chart-point"),
            charts.Marker(
                x=100,
                y=60,
                low_y=80,
                high_y=40,
                whisker=True,
                r=4,
                title=HOSTILE,
                css_class="point tpr",
                data=(("version", 3), ("metric", HOSTILE)),
            ),
        ],
    }
    return charts.Chart(**{**defaults, **overrides})


def test_the_template_draws_every_mark_where_the_chart_says():
    svg = render_to_string("core/_chart.html", {"chart": _chart()})
    assert svg.count("<svg") == 1 and svg.count('<line x1="50" x2="450"') == 2  # a gridline per y tick
    assert svg.count('class="chart-bar-link"') == 1  # only the bar with an href links
    for drawn in (
        'viewBox="0 0 470 240" role="img" aria-labelledby="test-title"',
        '<title id="test-title">',
        '<rect class="chart-bar" x="60" y="110" width="20" height="100">',
        'transform="rotate(-40 70.0 0.0)"',
        '<polygon class="chart-band" points="1,2 3,4 3,5">',
        '<path class="chart-band-gap" d="M1,2 L3,4 Z">',
        '<polyline class="chart-line" points="1,2 3,4">',
        '<path class="chart-step" d="M1,2 H3">',
        '<line class="chart-reference" x1="50" x2="450" y1="50" y2="50">',
        '<circle class="chart-point" cx="70" cy="110" r="3">',
        '<g class="point tpr" data-version="3" data-metric="',
        '<line class="whisker" x1="100" x2="100" y1="80" y2="40">',
    ):
        assert drawn in svg, drawn


def test_the_template_escapes_every_text_it_is_given():
    svg = render_to_string("core/_chart.html", {"chart": _chart()})
    assert "<script" not in svg
    # Titles, tick labels, axis titles, bar labels and tooltips, data attributes: all of it.
    assert svg.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") == 14
    assert 'href="/t/?mode=1&amp;x=&quot;y&quot;"' in svg


def test_an_empty_chart_is_said_in_words_instead_of_drawn():
    html = render_to_string("core/_chart.html", {"chart": _chart(empty=True), "empty": "Nothing <yet>."})
    assert "<svg" not in html
    assert '<p class="empty">Nothing &lt;yet&gt;.</p>' in html
    assert render_to_string("core/_chart.html", {"chart": _chart(empty=True)}).strip() == ""
