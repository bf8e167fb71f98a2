"""Promotion: choosing the one judge version per criterion that regression suites and monitoring use.

A version may be promoted only on evidence: its latest finished run on the dev split must meet the project's bar
(TPR and TNR, 0.9 each by default). Promoting ends the criterion's previous promotion; both stay on record.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Criterion, Project
from annotation.services import DomainError
from judges import kinds
from judges.models import JudgeRun, JudgeVersion, Promotion, PromotionBar


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


def promotion_bar(*, project: Project) -> PromotionBar:
    """The project's promotion bar: the stored one, or the default (unsaved) when the expert never set one."""
    return PromotionBar.objects.filter(project=project).first() or PromotionBar(project=project)


def eligibility(version: JudgeVersion) -> Eligibility:
    """Checks the version's latest finished dev run against the project's bar."""
    bar = promotion_bar(project=version.judge.project)
    min_tpr, min_tnr = bar.min_tpr, bar.min_tnr

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
