"""The cost ladder: per criterion, every judge's alignment on dev next to what it costs and how long it takes, and
the cheapest one that meets the target — the method's "cheapest judge that agrees with the expert"."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Avg, Count, Sum

from judges import kinds
from judges.models import Judge, JudgeRun, Judgment

TARGET = 0.9


@dataclass(frozen=True)
class LadderRung:
    judge: Judge
    run: JudgeRun
    tpr: float | None
    tnr: float | None
    # Dollars per 1,000 traces; None when unknown (an LLM without prices, verdicts made elsewhere).
    cost_per_1000: float | None
    mean_latency_ms: float | None

    @property
    def meets_target(self) -> bool:
        return self.tpr is not None and self.tnr is not None and self.tpr >= TARGET and self.tnr >= TARGET


def _sort_key(rung: LadderRung) -> tuple[bool, float, float]:
    # Cheapest first; unknown cost sorts last (it may be anything), then the faster one.
    unknown = rung.cost_per_1000 is None
    return (unknown, rung.cost_per_1000 or 0.0, rung.mean_latency_ms or 0.0)


@dataclass(frozen=True)
class Ladder:
    rungs: list[LadderRung]  # cheapest first
    cheapest_aligned: LadderRung | None  # the cheapest rung meeting the target on TPR and TNR, if any


def cost_ladders(latest_dev_runs: list[tuple[Judge, JudgeRun]]) -> dict[int, Ladder]:
    """Per criterion id, a ladder built from each judge's latest finished dev run. One query for all the runs."""
    if not latest_dev_runs:
        return {}
    totals = {
        row["run_id"]: row
        for row in Judgment.objects.filter(run__in=[run for _, run in latest_dev_runs])
        .values("run_id")
        .annotate(n=Count("id"), cost=Sum("cost_usd"), priced=Count("cost_usd"), latency=Avg("latency_ms"))
    }
    by_criterion: dict[int, list[LadderRung]] = {}
    for judge, run in latest_dev_runs:
        row = totals.get(run.pk, {})
        n = row.get("n") or 0
        if kinds.get(judge.kind).local:  # runs here without paying anyone: zero, not unknown
            cost = 0.0
        elif n and row.get("priced") == n:
            cost = 1000 * (row["cost"] or 0.0) / n
        else:
            cost = None
        report = run.report or {}
        by_criterion.setdefault(judge.criterion_id, []).append(
            LadderRung(
                judge=judge,
                run=run,
                tpr=report.get("tpr"),
                tnr=report.get("tnr"),
                cost_per_1000=cost,
                mean_latency_ms=row.get("latency"),
            )
        )
    ladders = {}
    for criterion_id, rungs in by_criterion.items():
        rungs.sort(key=_sort_key)
        ladders[criterion_id] = Ladder(rungs, next((rung for rung in rungs if rung.meets_target), None))
    return ladders
