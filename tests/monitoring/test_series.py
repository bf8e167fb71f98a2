"""The numbers behind the monitoring pages, without a database: intervals per bucket, gaps, the sample-size note
and the chart geometry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.utils.html import escape

from judges.stats import ConfusionMatrix, corrected_pass_rate_interval, proportion_interval
from monitoring.charts import series_chart
from monitoring.series import (
    NO_BETTER_THAN_CHANCE,
    NO_JUDGE_EVIDENCE,
    bucket_stats,
    corrected_interval,
    evidence_matrix,
    sample_size_note,
    series,
    traces_for_margin,
    truncate,
)

START = datetime(2026, 11, 20, tzinfo=UTC)
GOOD_JUDGE = ConfusionMatrix(tp=270, fn=10, fp=12, tn=108)


def test_a_bucket_carries_the_exact_interval_and_a_corrected_rate_wider_than_it():
    stats = bucket_stats(start=START, end=START, passes=80, fails=20, errors=3, matrix=GOOD_JUDGE)
    assert stats.judged == 100 and stats.errors == 3 and stats.observed == 0.8
    assert (stats.observed_low, stats.observed_high) == proportion_interval(80, 100)
    assert stats.corrected_flags == () and not stats.corrected_unreliable
    corrected = stats.corrected
    assert corrected is not None and corrected.low <= corrected.estimate <= corrected.high
    # Rogan–Gladen with TPR 270/280 and TNR 108/120: (0.8 + 0.9 − 1) / (0.964 + 0.9 − 1) = 0.810.
    assert abs(corrected.estimate - (0.8 + 0.9 - 1) / (270 / 280 + 0.9 - 1)) < 1e-9
    assert corrected.high - corrected.low > stats.observed_high - stats.observed_low


def test_a_rate_that_cannot_be_computed_carries_its_reason_not_a_number():
    chance = ConfusionMatrix(tp=50, fn=50, fp=50, tn=50)
    assert bucket_stats(start=START, end=START, passes=5, fails=5, errors=0, matrix=chance).corrected_missing == (
        NO_BETTER_THAN_CHANCE
    )
    assert bucket_stats(start=START, end=START, passes=5, fails=5, errors=0, matrix=None).corrected_missing == (
        NO_JUDGE_EVIDENCE
    )
    empty = bucket_stats(start=START, end=START, passes=0, fails=0, errors=2, matrix=GOOD_JUDGE)
    assert empty.observed is None and empty.observed_low is None and empty.corrected is None
    assert evidence_matrix({"tp": 1}) is None and evidence_matrix({"tp": 1, "fn": 2, "fp": 3, "tn": 4}).n == 10


def test_the_series_has_every_bucket_and_the_chart_breaks_at_gaps():
    counts = {START: (30, 10, 0), START + timedelta(hours=1): (20, 5, 1), START + timedelta(hours=3): (9, 1, 0)}
    stats = series(counts=counts, start=START, end=START + timedelta(hours=4), bucket="hour", matrix=GOOD_JUDGE)
    assert [s.judged for s in stats] == [40, 25, 0, 10]
    chart = series_chart(stats, bucket="hour", criterion="no_apology", thresholds=[0.9, 0.9, 0.5])
    assert chart.observed.line.count("M") == 2  # two runs: hours 0–1 and hour 3
    assert chart.observed.band.count("Z") == 2
    assert len(chart.observed.points) == 3 and len(chart.corrected.points) == 3
    assert [t.title for t in chart.thresholds] == ["threshold 50%", "threshold 90%"]
    point = chart.observed.points[0]
    assert point.high_y < point.y < point.low_y  # higher rates are drawn higher
    assert "n = 40" in point.title


def test_the_sample_size_note_says_how_wide_the_interval_is_and_what_would_narrow_it():
    stats = bucket_stats(start=START, end=START, passes=27, fails=10, errors=0, matrix=None)
    assert (
        sample_size_note(stats, "this hour") == "n = 37 this hour: the interval is ±15 points; about 310 traces give ±5"
    )
    assert traces_for_margin(0.5) == 390 and traces_for_margin(0.99) == traces_for_margin(0.9) == 140
    nothing = bucket_stats(start=START, end=START, passes=0, fails=0, errors=0, matrix=None)
    assert sample_size_note(nothing, "today").startswith("n = 0 today: no interval yet")


def test_buckets_are_utc_hours_and_days():
    moment = datetime(2026, 11, 20, 13, 47, 12, tzinfo=UTC)
    assert truncate(moment, "hour") == datetime(2026, 11, 20, 13, tzinfo=UTC)
    assert truncate(moment, "day") == datetime(2026, 11, 20, tzinfo=UTC)


def test_the_fast_corrected_interval_gives_exactly_the_numbers_of_judges_stats():
    for matrix in (GOOD_JUDGE, ConfusionMatrix(tp=40, fn=9, fp=7, tn=30), ConfusionMatrix(tp=5, fn=0, fp=0, tn=3)):
        for passes, judged in ((0, 1), (3, 37), (80, 100), (950, 1000), (12, 12)):
            expected = corrected_pass_rate_interval(
                matrix, judged_passes=passes, judged=judged, resamples=10_000, seed=0
            )
            assert corrected_interval(matrix, passes, judged, 10_000) == expected, (matrix, passes, judged)
    assert corrected_interval(ConfusionMatrix(tp=5, fn=5, fp=5, tn=5), 3, 10, 10_000) is None


def test_a_narrow_interval_is_shown_with_a_decimal_and_an_undefined_rate_in_words():
    from monitoring.templatetags.monitoring_tags import rate

    assert rate(0.8612, 0.8557, 0.8668) == '<strong>86.1%</strong> <span class="ci">(85.6%–86.7%)</span>'
    assert rate(0.75, 0.66, 0.82) == '<strong>75%</strong> <span class="ci">(66%–82%)</span>'
    assert rate("", "", "", "undefined: <chance>") == '<span class="monitor-undefined">undefined: &lt;chance&gt;</span>'


def test_a_flagged_bucket_carries_its_flags_into_the_chart_and_the_table_cell():
    near_chance = ConfusionMatrix(tp=51, fn=49, fp=49, tn=51)
    counts = {START: (30, 70, 0), START + timedelta(hours=1): (50, 50, 0)}
    stats = series(counts=counts, start=START, end=START + timedelta(hours=2), bucket="hour", matrix=near_chance)
    clipped, kept = stats
    assert clipped.corrected.estimate == 0.0 and clipped.corrected_unreliable
    clipped_flag, dropped_flag = clipped.corrected_flags
    assert clipped_flag.startswith("clipped to 0%: the correction gives -950%")
    assert dropped_flag.endswith(
        "of the draws dropped (the judge no better than chance in them): the interval is not reliable"
    )
    # 50 of 100: the correction is 50%, not clipped, but just as many draws are dropped.
    assert kept.corrected.estimate == 0.5 and len(kept.corrected_flags) == 1 and kept.corrected_unreliable
    chart = series_chart(stats, bucket="hour", criterion="no_apology")
    assert [p.css_class for p in chart.corrected.points] == ["chart-point-corrected chart-point-flagged"] * 2
    assert "; clipped to 0%: the correction gives -950%" in chart.corrected.points[0].title
    assert [p.css_class for p in chart.observed.points] == ["chart-point-observed"] * 2

    from monitoring.templatetags.monitoring_tags import corrected_rate

    cell = corrected_rate(clipped)
    assert cell.startswith(
        '<strong>0.0%</strong> <span class="ci">(0.0%–0.0%)</span><span class="monitor-flag">⚠ clipped'
    )
    assert cell.count('<span class="monitor-flag">') == 2
    good = bucket_stats(start=START, end=START, passes=80, fails=20, errors=0, matrix=GOOD_JUDGE)
    assert "monitor-flag" not in corrected_rate(good)
    undefined = bucket_stats(start=START, end=START, passes=5, fails=5, errors=0, matrix=None)
    assert corrected_rate(undefined) == f'<span class="monitor-undefined">{escape(NO_JUDGE_EVIDENCE)}</span>'
