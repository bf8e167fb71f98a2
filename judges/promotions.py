"""Promotion: choosing the one judge version per criterion that regression suites and monitoring use.

A version may be promoted only on evidence: its latest finished run on the dev split must meet the project's bar
(TPR and TNR, 0.9 each by default). Promoting ends the criterion's previous promotion; both stay on record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Criterion, Project
from annotation.services import DomainError
from judges import kinds
from judges.models import DEFAULT_MIN_TNR, DEFAULT_MIN_TPR, Judge, JudgeRun, JudgeVersion, Promotion, PromotionBar


class PromotionRefused(DomainError):
    """The version may not be promoted; the message says why and what would change that."""


@dataclass(frozen=True)
class Eligibility:
    """Whether a version meets its project's bar on dev, with the run that shows it (or why not)."""

    eligible: bool
    reason: str
    dev_run: JudgeRun | None
    min_tpr: float
    min_tnr: float


def latest_dev_run(version: JudgeVersion) -> JudgeRun | None:
    return (
        JudgeRun.objects.filter(version=version, split=JudgeRun.Split.DEV, status=JudgeRun.Status.DONE)
        .order_by("-finished_at", "-id")
        .first()
    )


def _percent(value: float) -> str:
    return f"{value:.0%}"


def eligibility(version: JudgeVersion) -> Eligibility:
    """Checks the version's latest finished dev run against the project's bar."""
    min_tpr, min_tnr = promotion_bar(project=version.judge.project)

    def refuse(reason: str, run: JudgeRun | None = None) -> Eligibility:
        return Eligibility(False, reason, run, min_tpr, min_tnr)

    kind = kinds.get(version.judge.kind)
    if not kind.judges_new_outputs:
        return refuse(kind.cannot_judge_new_outputs)
    run = latest_dev_run(version)
    if run is None:
        return refuse(f"{version} has no finished run on the dev split: run it on dev first.")
    report = run.report or {}
    tpr, tnr = report.get("tpr"), report.get("tnr")
    if tpr is None or tnr is None:
        return refuse(
            f"The dev run of {version} cannot measure both TPR and TNR: the dev split needs passes and fails.", run
        )
    if tpr < min_tpr or tnr < min_tnr:
        return refuse(
            f"On dev, {version} has TPR {_percent(tpr)} and TNR {_percent(tnr)}; the bar is "
            f"TPR ≥ {_percent(min_tpr)} and TNR ≥ {_percent(min_tnr)}.",
            run,
        )
    return Eligibility(
        True, f"On dev, TPR {_percent(tpr)} and TNR {_percent(tnr)} meet the bar.", run, min_tpr, min_tnr
    )


@transaction.atomic
def judge_version_promote(
    *, version: JudgeVersion, user: AbstractBaseUser | None = None, comment: str = ""
) -> Promotion:
    """Makes `version` its criterion's promoted judge, ending the previous promotion. Raises PromotionRefused."""
    criterion = Criterion.objects.select_for_update().get(pk=version.judge.criterion_id)
    check = eligibility(version)
    if not check.eligible:
        raise PromotionRefused(check.reason)
    now = timezone.now()
    current = Promotion.objects.filter(criterion=criterion, ended_at=None).first()
    if current is not None:
        if current.version_id == version.pk:
            return current
        current.ended_at, current.ended_by = now, user
        current.save(update_fields=["ended_at", "ended_by"])
    return Promotion.objects.create(
        criterion=criterion,
        version=version,
        dev_run=check.dev_run,
        report=check.dev_run.report if check.dev_run else {},
        min_tpr=check.min_tpr,
        min_tnr=check.min_tnr,
        comment=comment,
        promoted_by=user,
        promoted_at=now,
    )


@transaction.atomic
def promotion_withdraw(*, criterion: Criterion, user: AbstractBaseUser | None = None) -> Promotion | None:
    """Ends the criterion's current promotion, if any: suites and monitoring then skip the criterion."""
    Criterion.objects.select_for_update().get(pk=criterion.pk)
    current = Promotion.objects.filter(criterion=criterion, ended_at=None).first()
    if current is not None:
        current.ended_at, current.ended_by = timezone.now(), user
        current.save(update_fields=["ended_at", "ended_by"])
    return current


def current_promotions(*, project: Project) -> dict[int, Promotion]:
    """criterion id → its current promotion (with version and judge), for the project's criteria that have one."""
    promotions = Promotion.objects.filter(criterion__project=project, ended_at=None).select_related(
        "version__judge", "criterion"
    )
    return {p.criterion_id: p for p in promotions}


# --- the bar -------------------------------------------------------------------------------------------------------

# The bar must be better than a coin: at 0.5 a judge that always says "pass" would clear the TNR half of it.
BAR_MIN_EXCLUSIVE, BAR_MAX = 0.5, 1.0


class Bar(NamedTuple):
    """The TPR and TNR a version's latest dev run must reach to be promoted."""

    min_tpr: float
    min_tnr: float


def promotion_bar(*, project: Project) -> Bar:
    """The project's bar (the default until the expert sets one). With promotion_bar_set, the only code that
    knows where the bar is stored."""
    stored = PromotionBar.objects.filter(project=project).values_list("min_tpr", "min_tnr").first()
    return Bar(*stored) if stored else Bar(DEFAULT_MIN_TPR, DEFAULT_MIN_TNR)


@transaction.atomic
def promotion_bar_set(*, project: Project, min_tpr: float, min_tnr: float, user: AbstractBaseUser | None = None) -> Bar:
    """Sets the TPR and TNR a version's dev run must reach to be promoted, by `user` (the expert; the view checks).
    Current promotions keep the bar they were promoted under (it is on their record); the judges page warns about
    any now under the new bar."""
    for name, value in (("min_tpr", min_tpr), ("min_tnr", min_tnr)):
        # Written so that NaN fails too: every comparison with it is false.
        if not BAR_MIN_EXCLUSIVE < value <= BAR_MAX:
            raise DomainError(f"{name}: must be above 0.5 and at most 1, got {value} for project {project.slug!r}")
    PromotionBar.objects.update_or_create(project=project, defaults={"min_tpr": min_tpr, "min_tnr": min_tnr})
    return Bar(min_tpr, min_tnr)


# --- what the pages show -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionPromotion:
    """A criterion's current promotion and whether the promoted version's latest dev run still meets the bar."""

    promotion: Promotion | None
    # Set when the promoted version's latest dev run no longer meets the (current) bar: a warning, not a demotion.
    warning: str = ""


def criterion_promotion(promotion: Promotion | None) -> CriterionPromotion:
    if promotion is None:
        return CriterionPromotion(promotion=None)
    check = eligibility(promotion.version)
    warning = ""
    if not check.eligible:
        warning = f"Promoted, but its latest dev run is under the bar: {check.reason}"
    return CriterionPromotion(promotion=promotion, warning=warning)


def criterion_promotions(*, project: Project) -> dict[int, CriterionPromotion]:
    """criterion id → its promotion state, for the judges page: one query for the promotions and one per promoted
    criterion (its version's latest dev run), so bounded by the number of criteria, not of traces or runs."""
    promotions = current_promotions(project=project)
    for promotion in promotions.values():
        promotion.version.judge.project = project  # eligibility reads the bar from here; spare the query
    return {criterion_id: criterion_promotion(p) for criterion_id, p in promotions.items()}


@dataclass(frozen=True)
class VersionPromotion:
    number: int
    eligible: bool
    reason: str
    is_current: bool


@dataclass(frozen=True)
class JudgePromotionStates:
    """The judge page's promotion block: the criterion's current promotion (perhaps another judge's version), per
    version number whether it may be promoted or why not, and the bar."""

    criterion_promotion: CriterionPromotion
    version_promotions: dict[int, VersionPromotion]
    bar: PromotionBar


def judge_promotion_states(*, project: Project, judge: Judge, versions: list[JudgeVersion]) -> JudgePromotionStates:
    promotion = (
        Promotion.objects.filter(criterion_id=judge.criterion_id, ended_at=None)
        .select_related("version__judge__project", "promoted_by")
        .first()
    )
    judge.project = project
    states = {}
    for version in versions:
        version.judge = judge  # eligibility reads judge.kind and the project's bar: no query per version for them
        check = eligibility(version)
        states[version.number] = VersionPromotion(
            number=version.number,
            eligible=check.eligible,
            reason=check.reason,
            is_current=promotion is not None and promotion.version_id == version.pk,
        )
    return JudgePromotionStates(
        criterion_promotion=criterion_promotion(promotion),
        version_promotions=states,
        bar=promotion_bar(project=project),
    )


@dataclass(frozen=True)
class PromotionHistory:
    promotions: list[Promotion]
    capped: bool  # there are more than the page shows


def promotion_history_page(*, project: Project, limit: int) -> PromotionHistory:
    """Every promotion of the project, newest first, at most `limit`: who promoted which version, on what dev
    evidence under which bar, and when and by whom it ended."""
    promotions = list(
        Promotion.objects.filter(criterion__project=project)
        .select_related("criterion", "version__judge", "promoted_by", "ended_by", "dev_run")
        .order_by("-promoted_at", "-id")[: limit + 1]
    )
    return PromotionHistory(promotions=promotions[:limit], capped=len(promotions) > limit)
