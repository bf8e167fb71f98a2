"""What the judges pages show, composed from the lower layers: the selectors, promotions, the cost ladder and
the comparison of two judges. Kept apart from judges.selectors, which those layers read themselves."""

from __future__ import annotations

from dataclasses import dataclass, field

from annotation.models import Criterion, Project
from judges.comparison import JudgeComparison, compare_judges
from judges.evidence import BarCheck
from judges.kinds import versions_drift
from judges.ladder import Ladder, cost_ladders
from judges.models import Judge, JudgeRun, JudgeVersion
from judges.promotions import CriterionPromotion, criterion_promotions, promotion_bar
from judges.selectors import (
    compare_counts,
    comparison_exclusions,
    judges_with_versions,
    latest_finished_runs,
    project_split_counts,
)
from judges.splits import SPLITS

# --- the judges page: every criterion's judges, their latest runs, the cost ladder and the promotion -------------


@dataclass
class JudgeSummary:
    judge: Judge
    versions: list[JudgeVersion]
    # (split, its latest done run or None, that run against the project's bar or None), in split order; "all" last.
    runs: list[tuple[str, JudgeRun | None, BarCheck | None]]
    # Its latest version and its promoted one, when built on a definition or labels that changed since (each with
    # `.drift`, JudgeKind.drift): offered a new version from current labels.
    drifted: list[JudgeVersion] = field(default_factory=list)


@dataclass
class CriterionSection:
    criterion: Criterion
    splits: list[tuple[str, int, int]]  # (split, pass count, fail count)
    judges: list[JudgeSummary]
    # The cost ladder: every judge's latest test run beside its latest dev run, cheapest first (None before any).
    ladder: Ladder | None = None
    promotion: CriterionPromotion | None = None


def judge_list_sections(*, project: Project) -> list[CriterionSection]:
    """One section per criterion of the project, in criterion order: its labels per split, its judges with their
    latest finished run per split (each against the project's bar), the cost ladder (test, dev beside it) and the
    promotion. A fixed number of queries (plus two per promoted criterion), whatever the number of judges, versions
    and runs."""
    counts = project_split_counts(project=project)
    latest = latest_finished_runs(project=project)
    bar = promotion_bar(project=project)
    by_criterion: dict[int, list[JudgeSummary]] = {}
    ladder_runs = []
    for judge in judges_with_versions(project=project):
        runs = []
        for split in (*SPLITS, JudgeRun.Split.ALL):
            run = latest.get((judge.pk, split))
            # "all" is shown only when it was run (an external judge's import is one); every split always is.
            if run is not None or split != JudgeRun.Split.ALL:
                runs.append((split, run, bar.check(run.report) if run else None))
        summary = JudgeSummary(judge=judge, versions=list(judge.versions.all()), runs=runs)
        by_criterion.setdefault(judge.criterion_id, []).append(summary)
        ladder_runs.append(
            (judge, latest.get((judge.pk, JudgeRun.Split.DEV)), latest.get((judge.pk, JudgeRun.Split.TEST)))
        )
    ladders = cost_ladders(ladder_runs, bar=bar)
    promotions = criterion_promotions(project=project)
    _mark_drift([summary for summaries in by_criterion.values() for summary in summaries], promotions)
    sections = []
    for criterion in Criterion.objects.filter(project=project).order_by("position", "id"):
        split_count = counts[criterion.pk]
        sections.append(
            CriterionSection(
                criterion=criterion,
                splits=[(split, split_count[split]["pass"], split_count[split]["fail"]) for split in SPLITS],
                judges=by_criterion.get(criterion.pk, []),
                ladder=ladders.get(criterion.pk),
                promotion=promotions.get(criterion.pk),
            )
        )
    return sections


def _mark_drift(summaries: list[JudgeSummary], promotions: dict[int, CriterionPromotion]) -> None:
    """Each judge's latest and promoted versions that are built on an older state, in one call for the page."""
    promoted = {
        cp.promotion.version.judge_id: cp.promotion.version for cp in promotions.values() if cp.promotion is not None
    }
    watched = {
        summary.judge.pk: [v for v in (summary.versions[:1] + [promoted.get(summary.judge.pk)]) if v is not None]
        for summary in summaries
    }
    drifts = versions_drift(v.pk for versions in watched.values() for v in versions)
    for summary in summaries:
        seen = set()
        for version in watched[summary.judge.pk]:
            if version.pk in drifts and version.pk not in seen:
                seen.add(version.pk)
                version.drift = drifts[version.pk]
                summary.drifted.append(version)


# --- two runs of one criterion side by side ------------------------------------------------------------------


def _run_name(run: JudgeRun, other: JudgeRun) -> str:
    version = run.version
    if version.judge_id == other.version.judge_id:
        return f"v{version.number}"
    return f"{version.judge.name} v{version.number}"


@dataclass(frozen=True)
class JudgeRunComparison:
    name_a: str
    name_b: str
    criterion: Criterion
    comparison: JudgeComparison  # on the traces both judged with a verdict
    excluded: dict[str, int]  # comparison_exclusions


def judge_run_comparison(*, run_a: JudgeRun, run_b: JudgeRun) -> JudgeRunComparison:
    """Two runs of one criterion (run_pair_check) against the expert, measured against the project's bar."""
    counts = compare_counts(run_a=run_a, run_b=run_b)
    both = {key: n for key, n in counts.items() if key[1] in ("pass", "fail") and key[2] in ("pass", "fail")}
    name_a, name_b = _run_name(run_a, run_b), _run_name(run_b, run_a)
    if name_a == name_b:  # the same version twice (two runs of it): tell them apart by run
        name_a, name_b = f"{name_a} (run #{run_a.pk})", f"{name_b} (run #{run_b.pk})"
    bar = promotion_bar(project=run_a.version.judge.project)
    comparison = compare_judges(both, name_a=name_a, name_b=name_b, min_tpr=bar.min_tpr, min_tnr=bar.min_tnr)
    return JudgeRunComparison(
        name_a=name_a,
        name_b=name_b,
        criterion=run_a.version.judge.criterion,
        comparison=comparison,
        excluded=comparison_exclusions(counts),
    )
