"""The cost ladder: judges ordered by cost per 1,000 traces, each judge's test run beside its dev run, and the
cheapest one meeting the project's bar on test (the 95% lower bounds), never on the dev split it was tuned on."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from judges.ladder import cost_ladders
from judges.models import Judge, JudgeRun, JudgeVersion, Judgment
from judges.promotions import Bar, promotion_bar_set
from tests.factories import make_criterion, make_trace

pytestmark = pytest.mark.django_db
BAR = Bar(0.9, 0.9)


def finished_run(version: JudgeVersion, split: str, counts: tuple[int, int, int, int]) -> JudgeRun:
    tp, fn, fp, tn = counts
    report = {"tp": tp, "fn": fn, "fp": fp, "tn": tn, "tpr": tp / (tp + fn), "tnr": tn / (tn + fp)}
    return JudgeRun.objects.create(
        version=version, split=split, status="done", total=sum(counts), finished_at=timezone.now(),
        report={**report, "n": sum(counts), "ci": {}},
    )  # fmt: skip


def rung_runs(judge: Judge, *, dev, test, costs: list[float | None], latency: int):
    """The judge's dev and test runs (either may be None); the judgments priced on the test run (else dev)."""
    version = JudgeVersion.objects.create(judge=judge, number=1, config={})
    dev_run = finished_run(version, "dev", dev) if dev else None
    test_run = finished_run(version, "test", test) if test else None
    for i, cost in enumerate(costs):
        trace = make_trace(project=judge.project, external_id=f"{judge.name}-{i}")
        Judgment.objects.create(run=test_run or dev_run, trace=trace, verdict="pass", cost_usd=cost, latency_ms=latency)
    return judge, dev_run, test_run


PERFECT = (100, 0, 0, 100)


@pytest.fixture
def ladder_judges(project):
    criterion = make_criterion(project=project, name="grounded")

    def judge(name: str, kind: str) -> Judge:
        return Judge.objects.create(project=project, criterion=criterion, name=name, kind=kind)

    runs = {
        # Perfect on dev, where it was tuned; TPR 95% and TNR 70% on test: below the bar, however cheap.
        "regex": rung_runs(judge("regex", "assertion"), dev=PERFECT, test=(95, 5, 30, 70), costs=[None] * 4, latency=1),
        "tfidf": rung_runs(judge("tfidf", "classifier"), dev=(80, 20, 15, 85), test=(80, 20, 15, 85), costs=[None] * 4,
                           latency=2),
        # Under the bar on dev (TPR 88%), meets it on test: 95/97 and 99/100, lower bounds 92.8% and 94.6%.
        "mini": rung_runs(judge("mini", "llm"), dev=(88, 12, 9, 91), test=(95, 2, 1, 99), costs=[0.0004] * 4,
                          latency=900),
        "big": rung_runs(judge("big", "llm"), dev=PERFECT, test=PERFECT, costs=[0.004] * 4, latency=2500),
        "unpriced": rung_runs(judge("unpriced", "llm"), dev=PERFECT, test=PERFECT, costs=[None] * 4, latency=700),
        "vendor": rung_runs(judge("vendor", "external"), dev=None, test=PERFECT, costs=[None] * 4, latency=0),
        # Never run on test: on the ladder, never its answer.
        "dev-only": rung_runs(judge("dev-only", "assertion"), dev=PERFECT, test=None, costs=[None] * 4, latency=0),
    }  # fmt: skip
    return criterion, runs


def test_rungs_go_cheapest_first_and_the_cheapest_meeting_the_bar_on_test_is_named(ladder_judges):
    criterion, runs = ladder_judges
    ladder = cost_ladders(list(runs.values()), bar=BAR)[criterion.pk]
    names = [rung.judge.name for rung in ladder.rungs]
    # Local judges cost nothing (then by latency); priced LLMs by price; unknown cost last, whatever its alignment.
    assert names[:5] == ["dev-only", "regex", "tfidf", "mini", "big"]
    assert set(names[5:]) == {"unpriced", "vendor"}
    assert [rung.cost_per_1000 for rung in ladder.rungs[:5]] == pytest.approx([0.0, 0.0, 0.0, 0.4, 4.0])
    by_name = {rung.judge.name: rung for rung in ladder.rungs}
    assert by_name["regex"].dev_check.meets and not by_name["regex"].meets_target  # dev decides nothing
    assert by_name["mini"].check.meets and not by_name["mini"].dev_check.reaches
    assert by_name["dev-only"].test_run is None and by_name["dev-only"].check.status == "undefined"
    assert ladder.cheapest_aligned.judge.name == "mini"
    assert by_name["mini"].mean_latency_ms == 900 and by_name["mini"].run == by_name["mini"].test_run


def test_the_judges_page_shows_the_ladder_with_test_and_dev_and_the_bar_moves_it(ladder_judges, project, expert_client):
    html = expert_client.get(reverse("judge_list", args=["acme"])).content.decode()
    assert "Cost ladder" in html
    assert "Cheapest judge meeting the bar on test: <strong>mini</strong>" in html
    row = html.split('<tr data-judge="regex">')[1].split("</tr>")[0]
    assert "0.95" in row and "0.70" in row and "✗ below 90%" in row and ">v1</a>" in row
    assert "not run on test" in html.split('<tr data-judge="dev-only">')[1].split("</tr>")[0]
    # The project's bar is the ladder's: at 95%, mini's lower bounds (TPR 92.8%) fall short; only perfect ones meet.
    promotion_bar_set(project=project, min_tpr=0.95, min_tnr=0.95)
    html = expert_client.get(reverse("judge_list", args=["acme"])).content.decode()
    assert "Cheapest judge meeting the bar on test: <strong>big</strong>" in html


def test_no_runs_means_no_ladder(project):
    assert cost_ladders([], bar=BAR) == {}
