"""The cost ladder: judges on dev ordered by cost per 1,000 traces, and the cheapest one meeting the target."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from judges.ladder import cost_ladders
from judges.models import Judge, JudgeRun, JudgeVersion, Judgment
from tests.factories import make_criterion, make_trace

pytestmark = pytest.mark.django_db


def dev_run(judge: Judge, *, tpr: float, tnr: float, costs: list[float | None], latency: int) -> JudgeRun:
    version = JudgeVersion.objects.create(judge=judge, number=1, config={})
    run = JudgeRun.objects.create(
        version=version, split="dev", status="done", total=len(costs), finished_at=timezone.now(),
        report={"tpr": tpr, "tnr": tnr, "n": len(costs), "ci": {}},
    )  # fmt: skip
    for i, cost in enumerate(costs):
        trace = make_trace(project=judge.project, external_id=f"{judge.name}-{i}")
        Judgment.objects.create(run=run, trace=trace, verdict="pass", cost_usd=cost, latency_ms=latency)
    return run


@pytest.fixture
def ladder_judges(project):
    criterion = make_criterion(project=project, name="grounded")

    def judge(name: str, kind: str) -> Judge:
        return Judge.objects.create(project=project, criterion=criterion, name=name, kind=kind)

    runs = {
        "regex": dev_run(judge("regex", "assertion"), tpr=0.95, tnr=0.70, costs=[None] * 4, latency=1),
        "tfidf": dev_run(judge("tfidf", "classifier"), tpr=0.80, tnr=0.85, costs=[None] * 4, latency=2),
        "mini": dev_run(judge("mini", "llm"), tpr=0.93, tnr=0.91, costs=[0.0004] * 4, latency=900),
        "big": dev_run(judge("big", "llm"), tpr=0.97, tnr=0.95, costs=[0.004] * 4, latency=2500),
        "unpriced": dev_run(judge("unpriced", "llm"), tpr=0.99, tnr=0.99, costs=[None] * 4, latency=700),
        "vendor": dev_run(judge("vendor", "external"), tpr=0.96, tnr=0.96, costs=[None] * 4, latency=0),
    }
    return criterion, runs


def test_rungs_go_cheapest_first_and_the_cheapest_aligned_one_is_named(ladder_judges):
    criterion, runs = ladder_judges
    ladder = cost_ladders([(run.version.judge, run) for run in runs.values()])[criterion.pk]
    names = [rung.judge.name for rung in ladder.rungs]
    # Local judges cost nothing (then by latency); priced LLMs by price; unknown cost last, whatever its alignment.
    assert names[:4] == ["regex", "tfidf", "mini", "big"]
    assert set(names[4:]) == {"unpriced", "vendor"}
    assert [rung.cost_per_1000 for rung in ladder.rungs[:4]] == pytest.approx([0.0, 0.0, 0.4, 4.0])
    assert ladder.cheapest_aligned.judge.name == "mini"
    assert ladder.rungs[2].mean_latency_ms == 900


def test_the_judges_page_shows_the_ladder(ladder_judges, expert_client):
    html = expert_client.get(reverse("judge_list", args=["acme"])).content.decode()
    assert "Cost ladder" in html
    assert "Cheapest judge meeting the target: <strong>mini</strong>" in html


def test_no_dev_runs_means_no_ladder(project):
    assert cost_ladders([]) == {}
