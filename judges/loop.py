"""The loop's dashboard: its cadence (error-analysis cycles, the weekly outlier review, new failure modes, criteria
without an aligned judge, stale judges), the project's level on the maturity scale, and how the judges cover the
failure taxonomy. One read for the project page's panels, the failure-modes page, the REST route and the weekly
digest, so that all four say the same (docs/expert-reliability.md "The loop's cadence", "Coverage")."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, F, Max, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone

from annotation.models import (
    Criterion,
    FailureMode,
    Label,
    Note,
    NoteFailureMode,
    Project,
    ReviewSession,
    Trace,
    Verdict,
)
from annotation.taxonomy import failure_mode_table
from judges.guardrails import current_guardrail_marks
from judges.kinds import versions_drift
from judges.loop_rules import (
    DEFAULT_CYCLE_DAYS,
    DEFAULT_CYCLE_SIZE,
    DEFAULT_OUTLIER_DAYS,
    DEFAULT_OUTLIER_SIZE,
    NO_OBSERVED_FAILURE,
    Due,
    Maturity,
    is_aligned,
    judge_status,
    maturity,
    next_due,
    share,
)
from judges.maturity import levels_reached
from judges.models import Judge, JudgeRun, JudgeVersion, LoopCadence
from judges.promotions import current_promotions, promotion_bar
from judges.selectors import latest_finished_runs

OUTLIER_STRATEGIES = (ReviewSession.Strategy.LONGEST, ReviewSession.Strategy.RARE_METADATA)


@dataclass(frozen=True)
class CadenceSettings:
    cycle_days: int = DEFAULT_CYCLE_DAYS
    cycle_size: int = DEFAULT_CYCLE_SIZE
    outlier_days: int = DEFAULT_OUTLIER_DAYS
    outlier_size: int = DEFAULT_OUTLIER_SIZE


def cadence_settings(*, project: Project) -> CadenceSettings:
    row = LoopCadence.objects.filter(project=project).first()
    if row is None:
        return CadenceSettings()
    return CadenceSettings(row.cycle_days, row.cycle_size, row.outlier_days, row.outlier_size)


# --- sessions: the cycles and the outlier reviews -------------------------------------------------------------------


@dataclass(frozen=True)
class SessionRun:
    """A review session as far as the cadence cares: how many of its traces are reviewed, and when the last was."""

    session: ReviewSession
    reviewed: int
    ran_at: datetime


def _session_runs(project: Project, strategies: Q, at_least: int, now: datetime) -> list[SessionRun]:
    """The project's sessions of these strategies with at least `at_least` reviewed traces by `now`, latest first."""
    sessions = (
        ReviewSession.objects.filter(strategies, project=project)
        .annotate(
            reviewed=Count("items", filter=Q(items__trace__reviewed_at__lte=now)),
            ran_at=Max("items__trace__reviewed_at", filter=Q(items__trace__reviewed_at__lte=now)),
        )
        .filter(reviewed__gte=at_least)
        .order_by("-ran_at", "-id")
    )
    return [SessionRun(session=s, reviewed=s.reviewed, ran_at=s.ran_at) for s in sessions]


def last_cycle(*, project: Project, size: int, now: datetime) -> SessionRun | None:
    """The latest error-analysis cycle: a session that reads new traces (not one revisiting labelled ones) with at
    least `size` of them reviewed and notes written on them (open coding: a session without notes labelled, it did
    not look for failure modes). It ran when its last trace was reviewed."""
    candidates = _session_runs(project, ~Q(strategy__in=ReviewSession.REVISITING), size, now)
    for run in candidates:
        if Note.objects.filter(trace__review_sessions=run.session, created_at__lte=now).exists():
            return run
    return None


def last_outlier_review(*, project: Project, size: int, now: datetime) -> SessionRun | None:
    """The latest light review of outliers (the LONGEST and RARE_METADATA strategies) with at least `size` traces
    reviewed."""
    runs = _session_runs(project, Q(strategy__in=OUTLIER_STRATEGIES), size, now)
    return runs[0] if runs else None


# --- judges: each criterion's status, stale versions ----------------------------------------------------------------


@dataclass(frozen=True)
class CriterionStatus:
    criterion: Criterion
    status: str  # judges.loop_rules.STATUS_ORDER
    observed: bool  # a failure mode with coded traces is behind it


def criterion_statuses(*, project: Project, observed_modes: set[int]) -> list[CriterionStatus]:
    """Every criterion with the strongest status its judges reach (judges.loop_rules.judge_status). Five queries."""
    bar = promotion_bar(project=project)
    latest = latest_finished_runs(project=project)
    judges_by_criterion: dict[int, list[int]] = {}
    for judge_id, criterion_id in Judge.objects.filter(project=project).values_list("pk", "criterion_id"):
        judges_by_criterion.setdefault(criterion_id, []).append(judge_id)
    promoted = set(current_promotions(project=project))
    guardrail = {mark.version.judge.criterion_id for mark in current_guardrail_marks(project=project)}
    statuses = []
    for criterion in Criterion.objects.filter(project=project).order_by("position", "id"):
        judge_ids = judges_by_criterion.get(criterion.pk, [])
        aligned = any(
            (run := latest.get((judge_id, JudgeRun.Split.DEV))) is not None and bar.check(run.report).reaches
            for judge_id in judge_ids
        )
        status = judge_status(
            has_judge=bool(judge_ids),
            aligned_on_dev=aligned,
            promoted=criterion.pk in promoted,
            guardrail_ready=criterion.pk in guardrail,
        )
        statuses.append(
            CriterionStatus(criterion=criterion, status=status, observed=criterion.failure_mode_id in observed_modes)
        )
    return statuses


@dataclass(frozen=True)
class StaleJudge:
    judge: str
    criterion: str
    version: int
    why: str  # "promoted", "latest"
    headline: str
    changes: tuple[str, ...]


def stale_judges(*, project: Project) -> list[StaleJudge]:
    """Each judge's latest version and each promoted or guardrail-ready version that was built on a state that has
    changed since (judges.kinds.versions_drift: an earlier definition, labels changed since, ...)."""
    watched: dict[int, tuple[Any, str]] = {}
    for promotion in current_promotions(project=project).values():
        promotion.version.judge.criterion = promotion.criterion  # spare a query per promotion
        watched[promotion.version.pk] = (promotion.version, "promoted")
    for mark in current_guardrail_marks(project=project):
        watched.setdefault(mark.version.pk, (mark.version, "guardrail-ready"))
    # Each judge's latest version in one query (a window, which the embedded SQLite runs too), however many judges.
    latest = (
        JudgeVersion.objects.filter(judge__project=project)
        .annotate(rank=Window(RowNumber(), partition_by=[F("judge_id")], order_by=[F("number").desc()]))
        .filter(rank=1)
        .select_related("judge__criterion")
        .defer("artifact")
    )
    for version in latest:
        watched.setdefault(version.pk, (version, "latest"))
    drifts = versions_drift(watched)
    stale = []
    for version_id, drift in drifts.items():
        version, why = watched[version_id]
        stale.append(
            StaleJudge(
                judge=version.judge.name,
                criterion=version.judge.criterion.name,
                version=version.number,
                why=why,
                headline=drift.headline,
                changes=tuple(drift.changes),
            )
        )
    return sorted(stale, key=lambda s: (s.criterion, s.judge, s.version))


# --- coverage -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModeCoverage:
    mode_id: int
    name: str
    trace_count: int
    note_count: int
    share_of_failing_traces: float
    criteria: list[CriterionStatus]

    @property
    def covered(self) -> bool:
        """A promoted (or guardrail-ready) judge checks this mode."""
        return any(item.status in ("promoted", "guardrail-ready") for item in self.criteria)


@dataclass(frozen=True)
class Coverage:
    modes: list[ModeCoverage]  # Pareto order
    unobserved: list[CriterionStatus]  # criteria tied to no observed failure mode
    failing_traces: int
    covered_failing_traces: int

    @property
    def covered_share(self) -> float | None:
        return share(self.covered_failing_traces, self.failing_traces)


def coverage(*, project: Project, statuses: list[CriterionStatus] | None = None) -> Coverage:
    """Per failure mode, most frequent first, the criteria that check it with their judge status; the criteria with
    no observed failure behind them; and how many failing traces (an expert fail label) carry a mode a promoted judge
    checks, of all failing traces (a failing trace with no mode coded is not covered)."""
    counted = failure_mode_table(project=project, stale_ok=True)
    counts = [c for c in counted.counts if not c.retired]
    observed = {c.id for c in counts if c.trace_count > 0}
    statuses = statuses if statuses is not None else criterion_statuses(project=project, observed_modes=observed)
    by_mode: dict[int, list[CriterionStatus]] = {}
    for item in statuses:
        if item.criterion.failure_mode_id is not None:
            by_mode.setdefault(item.criterion.failure_mode_id, []).append(item)
    modes = [
        ModeCoverage(
            mode_id=c.id,
            name=c.name,
            trace_count=c.trace_count,
            note_count=c.note_count,
            share_of_failing_traces=c.share_of_failing_traces,
            criteria=by_mode.get(c.id, []),
        )
        for c in counts
    ]
    covered_modes = [m.mode_id for m in modes if m.covered]
    failing = Label.objects.filter(
        criterion__project=project, verdict=Verdict.FAIL, author_id=project.expert_id
    ).values("trace_id")
    # The failing total the failure-modes page shows (cached with its counts on large projects): one number on both.
    failing_total = counted.failing_total
    covered_total = (
        Trace.objects.filter(
            project=project,
            pk__in=failing,
            id__in=NoteFailureMode.objects.filter(failure_mode_id__in=covered_modes).values("trace_id"),
        ).count()
        if covered_modes
        else 0
    )
    return Coverage(
        modes=modes,
        unobserved=[item for item in statuses if not item.observed],
        failing_traces=failing_total,
        covered_failing_traces=covered_total,
    )


# --- the whole dashboard --------------------------------------------------------------------------------------------


@dataclass
class LoopFacts:
    project: Project
    now: datetime
    settings: CadenceSettings
    cycle: SessionRun | None
    cycle_due: Due
    outlier_review: SessionRun | None
    outlier_done: bool  # within the last `outlier_days`
    new_failure_modes: list[FailureMode]
    statuses: list[CriterionStatus]
    stale: list[StaleJudge]
    maturity: Maturity
    coverage: Coverage
    unaligned: list[CriterionStatus] = field(default_factory=list)


def loop_facts(*, project: Project, now: datetime | None = None) -> LoopFacts:
    """Everything the dashboard, the REST route and the digest say, as of `now`."""
    now = now or timezone.now()
    config = cadence_settings(project=project)
    cycle = last_cycle(project=project, size=config.cycle_size, now=now)
    outliers = last_outlier_review(project=project, size=config.outlier_size, now=now)
    outlier_due = next_due(last_at=outliers.ran_at if outliers else None, every_days=config.outlier_days, now=now)
    modes = FailureMode.objects.filter(project=project, retired_at=None, created_at__lte=now)
    if cycle is not None:
        modes = modes.filter(created_at__gt=cycle.ran_at)
    table = coverage(project=project)
    statuses = [item for mode in table.modes for item in mode.criteria] + table.unobserved
    statuses.sort(key=lambda item: (item.criterion.position, item.criterion.pk))
    reached = levels_reached(project=project, now=now)
    reviewed = Trace.objects.filter(project=project, reviewed_at__lte=now).count()
    if reviewed:
        reached[1] = f"{reviewed} trace{'' if reviewed == 1 else 's'} reviewed by hand"
    return LoopFacts(
        project=project,
        now=now,
        settings=config,
        cycle=cycle,
        cycle_due=next_due(last_at=cycle.ran_at if cycle else None, every_days=config.cycle_days, now=now),
        outlier_review=outliers,
        outlier_done=not outlier_due.is_due,
        new_failure_modes=list(modes.order_by("created_at", "id")),
        statuses=statuses,
        stale=stale_judges(project=project),
        maturity=maturity(reached),
        coverage=table,
        unaligned=[item for item in statuses if not is_aligned(item.status)],
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def loop_payload(facts: LoopFacts) -> dict[str, Any]:
    """The facts as JSON: the REST route's body and the weekly digest's."""
    cycle, outliers, config = facts.cycle, facts.outlier_review, facts.settings
    return {
        "project": facts.project.slug,
        "as_of": facts.now.isoformat(),
        "settings": {
            "cycle_days": config.cycle_days,
            "cycle_size": config.cycle_size,
            "outlier_days": config.outlier_days,
            "outlier_size": config.outlier_size,
        },
        "cycle": {
            "last_at": _iso(cycle.ran_at) if cycle else None,
            "session": cycle.session.name if cycle else None,
            "reviewed": cycle.reviewed if cycle else 0,
            "next_due_at": _iso(facts.cycle_due.due_at),
            "due": facts.cycle_due.is_due,
        },
        "outlier_review": {
            "last_at": _iso(outliers.ran_at) if outliers else None,
            "session": outliers.session.name if outliers else None,
            "reviewed": outliers.reviewed if outliers else 0,
            "done": facts.outlier_done,
        },
        "new_failure_modes": [{"id": m.pk, "name": m.name} for m in facts.new_failure_modes],
        "criteria_without_aligned_judge": [
            {"criterion": item.criterion.name, "status": item.status} for item in facts.unaligned
        ],
        "stale_judges": [
            {
                "judge": s.judge,
                "criterion": s.criterion,
                "version": s.version,
                "why": s.why,
                "headline": s.headline,
                "changes": list(s.changes),
            }
            for s in facts.stale
        ],
        "maturity": {
            "level": facts.maturity.level,
            "name": facts.maturity.name,
            "next_step": facts.maturity.next_step,
            "evidence": {str(level): text for level, text in facts.maturity.evidence.items()},
        },
        "coverage": coverage_payload(facts.coverage),
    }


def coverage_payload(table: Coverage) -> dict[str, Any]:
    return {
        "modes": [
            {
                "id": mode.mode_id,
                "name": mode.name,
                "trace_count": mode.trace_count,
                "note_count": mode.note_count,
                "share_of_failing_traces": mode.share_of_failing_traces,
                "covered": mode.covered,
                "criteria": [{"criterion": item.criterion.name, "status": item.status} for item in mode.criteria],
            }
            for mode in table.modes
        ],
        "unobserved_criteria": [
            {"criterion": item.criterion.name, "status": item.status, "flag": NO_OBSERVED_FAILURE}
            for item in table.unobserved
        ],
        "failing_traces": table.failing_traces,
        "covered_failing_traces": table.covered_failing_traces,
        "covered_share": table.covered_share,
    }
