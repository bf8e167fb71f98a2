"""One bar everywhere (issue 11, §5): the project's bar is what "meets" means on the runs' badges, what the cost
ladder and promotion decide by and where the charts draw their target lines; changing it moves all of them. And a
run meets it only on evidence: TPR 1/1 and TNR 1/1 do not "meet 90%"."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse

from judges.models import JudgeRun
from judges.promotions import eligibility, promotion_bar_set
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.factories import make_criterion, make_split_labels

pytestmark = pytest.mark.django_db
NO_SORRY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
PASS, FAIL = ("Done.", "pass"), ("Sorry, no.", "fail")
# The history chart's y axis: 36 px from the top at 1.0, 148 px per 1.2 of rate (judges.charts).
CHART_TOP, CHART_SPAN, CHART_RANGE = 36, 220 - 72, 1.2


def chart_y(rate: float) -> float:
    return CHART_TOP + (1.0 - rate) / CHART_RANGE * CHART_SPAN


@pytest.fixture
def judge(project):
    """Perfect on dev (20 + 20) and on test (40 + 40): the test lower bounds are 91.2%."""
    criterion = make_criterion(project=project, name="no_apology")
    make_split_labels(criterion=criterion, split="dev", outputs=[PASS, FAIL] * 20, prefix="dev")
    make_split_labels(criterion=criterion, split="test", outputs=[PASS, FAIL] * 40, prefix="test")
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=NO_SORRY)
    for split in ("dev", "test"):
        judge_run_execute(run=judge_run_create(version=judge.latest_version(), split=split))
    return judge


def surfaces(client, judge) -> dict[str, object]:
    """What each place that reads the bar says about the judge."""
    listing = html.unescape(client.get(reverse("judge_list", args=["acme"])).content.decode())
    test_row = listing.split(f'id="judge-{judge.pk}"')[1].split('<tr data-split="test">')[1].split("</tr>")[0]
    detail = client.get(reverse("judge_detail", args=["acme", judge.pk]))
    chart = detail.context["chart"]
    test_run = JudgeRun.objects.get(version__judge=judge, split="test")
    run_page = client.get(reverse("judge_run_detail", args=["acme", test_run.pk])).content.decode()
    return {
        "badge": re.search(r'data-bar="(\w+)"[^>]*>([^<]*)<', test_row).groups(),
        "ladder": re.search(r'<p class="ladder-verdict">\s*(.*?)\s*</p>', listing, flags=re.S)[1].split("\n")[0],
        "chart": (chart.target.y, chart.target_tnr.y if chart.target_tnr else None),
        "run_lines": re.findall(r'<line class="target" x1="([\d.]+)"', run_page),
        "promotion": eligibility(judge.latest_version()).eligible,
    }


def test_changing_the_bar_moves_the_badges_the_ladder_the_charts_and_promotion_together(
    expert_client, project, judge, expert
):
    at_90 = surfaces(expert_client, judge)
    assert at_90["badge"] == ("meets", "✓ meets 90%")
    assert at_90["ladder"] == "Cheapest judge meeting the bar on test: <strong>apology</strong>"
    assert at_90["chart"] == (pytest.approx(chart_y(0.9), abs=0.01), None)
    assert at_90["run_lines"] == ["90.0", "90.0", "90.0"]  # TPR, TNR and recall on fail
    assert at_90["promotion"] is True

    promotion_bar_set(project=project, min_tpr=0.95, min_tnr=0.95, user=expert)
    at_95 = surfaces(expert_client, judge)
    # 40 of 40 has a lower bound of 91.2%: to show 95%, the planner asks for 73 of each.
    assert at_95["badge"] == ("short", "≈ 95% on too few labels: 32 more pass labels and 32 more fail labels")
    assert at_95["ladder"] == "No judge meets the bar on test yet."
    assert at_95["chart"] == (pytest.approx(chart_y(0.95), abs=0.01), None)
    assert at_95["run_lines"] == ["95.0", "95.0", "95.0"]
    assert at_95["promotion"] is False
    assert "under the bar of TPR ≥ 95% and TNR ≥ 95%" in eligibility(judge.latest_version()).reason

    # Different minimums for TPR and TNR: each surface uses each one.
    promotion_bar_set(project=project, min_tpr=0.8, min_tnr=0.92, user=expert)
    split = surfaces(expert_client, judge)
    assert split["badge"] == ("short", "≈ 80%/92% on too few labels: 5 more fail labels")
    assert split["chart"] == (pytest.approx(chart_y(0.8), abs=0.01), pytest.approx(chart_y(0.92), abs=0.01))
    assert split["run_lines"] == ["80.0", "92.0", "92.0"]
    assert split["promotion"] is False


def test_one_pass_and_one_fail_judged_right_do_not_meet_ninety_percent_anywhere(expert_client, project):
    criterion = make_criterion(project=project, name="tiny")
    make_split_labels(criterion=criterion, split="test", outputs=[PASS, FAIL], prefix="tiny")
    judge = judge_create(project=project, criterion=criterion, name="tiny-check", kind="assertion", config=NO_SORRY)
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="test"))
    assert (run.report["tpr"], run.report["tnr"], run.report["n"]) == (1.0, 1.0, 2)
    shortfall = "≈ 90% on too few labels: 35 more pass labels and 35 more fail labels"
    for url in (reverse("judge_list", args=["acme"]), reverse("judge_run_detail", args=["acme", run.pk])):
        page = html.unescape(expert_client.get(url).content.decode())
        assert "✓ meets" not in page and shortfall in page, url
