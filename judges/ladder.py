"""The cost ladder: per criterion, every judge's latest test run (its latest dev run beside it) next to what it costs
and how long it takes, and the cheapest judge that meets the project's bar on test — the method's "cheapest judge
that agrees with the expert", decided on the held-out split like promotion (judges.evidence says how a run meets
the bar)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Avg, Count, Sum

from judges import kinds
from judges.evidence import BarCheck
from judges.models import Judge, JudgeRun, Judgment
from judges.promotions import Bar


@dataclass(frozen=True)
class LadderRung:
    judge: Judge
    test_run: JudgeRun | None
    dev_run: JudgeRun | None
    # The test run against the bar (undefined without a test run); the dev run's, shown beside it.
    check: BarCheck
    dev_check: BarCheck | None
    # Dollars per 1,000 traces; None when unknown (an LLM without prices, verdicts made elsewhere).
    cost_per_1000: float | None
    mean_latency_ms: float | None

    @property
    def run(self) -> JudgeRun:
        """The run the cost and latency come from: the test run, or the dev run before there is one."""
        run = self.test_run or self.dev_run
        assert run is not None  # a rung exists only for a judge with a dev or a test run
        return run

    @property
    def tpr(self) -> float | None:
        return self.check.tpr.value if self.check.tpr else None

    @property
    def tnr(self) -> float | None:
        return self.check.tnr.value if self.check.tnr else None

    @property
    def meets_target(self) -> bool:
        return self.check.meets


def _sort_key(rung: LadderRung) -> tuple[bool, float, float]:
    # Cheapest first; unknown cost sorts last (it may be anything), then the faster one.
    unknown = rung.cost_per_1000 is None
    return (unknown, rung.cost_per_1000 or 0.0, rung.mean_latency_ms or 0.0)


@dataclass(frozen=True)
class Ladder:
    rungs: list[LadderRung]  # cheapest first
    cheapest_aligned: LadderRung | None  # the cheapest rung meeting the bar on test, if any


def cost_ladders(runs: list[tuple[Judge, JudgeRun | None, JudgeRun | None]], *, bar: Bar) -> dict[int, Ladder]:
    """Per criterion id, a ladder of the judges given as (judge, latest finished dev run, latest finished test run),
    each with at least one of the two. One query for all the runs' costs."""
    runs = [(judge, dev, test) for judge, dev, test in runs if dev is not None or test is not None]
    if not runs:
        return {}
    priced_runs = [test or dev for _, dev, test in runs]
    totals = {
        row["run_id"]: row
        for row in Judgment.objects.filter(run__in=priced_runs)
        .values("run_id")
        .annotate(n=Count("id"), cost=Sum("cost_usd"), priced=Count("cost_usd"), latency=Avg("latency_ms"))
    }
    by_criterion: dict[int, list[LadderRung]] = {}
    for (judge, dev, test), priced in zip(runs, priced_runs, strict=True):
        row = totals.get(priced.pk, {})
        n = row.get("n") or 0
        if kinds.get(judge.kind).local:  # runs here without paying anyone: zero, not unknown
            cost = 0.0
        elif n and row.get("priced") == n:
            cost = 1000 * (row["cost"] or 0.0) / n
        else:
            cost = None
        by_criterion.setdefault(judge.criterion_id, []).append(
            LadderRung(
                judge=judge,
                test_run=test,
                dev_run=dev,
                check=bar.check(test.report if test else None),
                dev_check=bar.check(dev.report) if dev else None,
                cost_per_1000=cost,
                mean_latency_ms=row.get("latency"),
            )
        )
    ladders = {}
    for criterion_id, rungs in by_criterion.items():
        rungs.sort(key=_sort_key)
        ladders[criterion_id] = Ladder(rungs, next((rung for rung in rungs if rung.meets_target), None))
    return ladders
