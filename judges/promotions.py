"""Promotion: choosing the one judge version per criterion that regression suites and monitoring use.

A version may be promoted only on evidence (RULE): its latest finished dev run must reach the project's bar (dev is
where the judge is iterated on, so its point estimates are a check, not the evidence), and its latest finished test
run must meet the bar with the 95% lower bounds of its TPR and TNR (judges.evidence). The test run is the
evidence: the promotion keeps its report, which monitoring's corrected pass rate reads, with the dev report beside
it. Promoting ends the criterion's previous promotion; both stay on record.

An LLM judge (a kind with `bias_battery`) also needs a finished bias battery (judges.bias) whose flip rates are all
at or under the project's bias bar (`max_flip_rate`, 5% by default): the point estimates, as the issue asks; the
battery's report, with the bar it passed, goes on the promotion's record beside the test evidence.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Criterion, Project
from annotation.services import DomainError
from judges import kinds
from judges.bias import latest_bias_run
from judges.evidence import UNDEFINED, BarCheck, bar_check, percent
from judges.models import (
    DEFAULT_MAX_FLIP_RATE,
    DEFAULT_MIN_TNR,
    DEFAULT_MIN_TPR,
    BiasRun,
    Judge,
    JudgeRun,
    JudgeVersion,
    Promotion,
    PromotionBar,
)
from judges.providers.bias import bias_problems
from judges.providers.bias import percent as flip_percent

RULE = (
    "A version is promoted when its latest dev run reaches the bar (TPR and TNR at or above it: dev is where the "
    "judge is iterated on) and its latest test run meets it on evidence: the 95% lower bounds of the test "
    "TPR and TNR at or above the bar. Test is held out: it can be run again, never tuned on. An LLM judge also "
    "needs a bias battery whose flip rates are at or under the bias bar."
)


class PromotionRefused(DomainError):
    """The version may not be promoted; the message says why and what would change that."""


@dataclass(frozen=True)
class Eligibility:
    """Whether a version may be promoted under its project's bar, with the runs that show it (or why not)."""

    eligible: bool
    reason: str
    dev_run: JudgeRun | None
    test_run: JudgeRun | None
    min_tpr: float
    min_tnr: float
    dev_check: BarCheck | None = None
    test_check: BarCheck | None = None
    # LLM judges: the latest finished bias battery and the bias bar it is held to (None for other kinds).
    bias_run: BiasRun | None = None
    max_flip_rate: float | None = None


def latest_run(version: JudgeVersion, split: str) -> JudgeRun | None:
    """The version's latest finished run on `split`."""
    return (
        JudgeRun.objects.filter(version=version, split=split, status=JudgeRun.Status.DONE)
        .order_by("-finished_at", "-id")
        .first()
    )


def eligibility(version: JudgeVersion) -> Eligibility:
    """Checks the version's latest finished dev and test runs against the project's bar (RULE)."""
    min_tpr, min_tnr = promotion_bar(project=version.judge.project)
    dev_run = test_run = None
    dev_check = test_check = None

    def refuse(reason: str) -> Eligibility:
        return Eligibility(False, reason, dev_run, test_run, min_tpr, min_tnr, dev_check, test_check)

    kind = kinds.get(version.judge.kind)
    if not kind.judges_new_outputs:
        return refuse(kind.cannot_judge_new_outputs)
    dev_run = latest_run(version, JudgeRun.Split.DEV)
    if dev_run is None:
        return refuse(f"{version} has no finished run on the dev split: run it on dev first.")
    dev_check = bar_check(dev_run.report, min_tpr=min_tpr, min_tnr=min_tnr)
    if dev_check.status == UNDEFINED:
        return refuse(
            f"The dev run of {version} cannot measure both TPR and TNR: the dev split needs passes and fails."
        )
    if not dev_check.reaches:
        return refuse(f"On dev, {version} has {dev_check.points_text()}; the bar is {dev_check.bar_text}.")
    test_run = latest_run(version, JudgeRun.Split.TEST)
    if test_run is None:
        return refuse(
            f"{version} has no finished run on the test split: run it on test before promoting. Test is held out: "
            "promotion is decided there, on labels the judge was never tuned on."
        )
    test_check = bar_check(test_run.report, min_tpr=min_tpr, min_tnr=min_tnr)
    if test_check.status == UNDEFINED:
        return refuse(
            f"The test run of {version} cannot measure both TPR and TNR: the test split needs passes and fails."
        )
    if not test_check.meets:
        return refuse(
            f"{test_check.explain(f'On test, {version}')} Promotion is decided on test, by the 95% lower bounds "
            f"(on dev, where it was tuned: {dev_check.points_text()})."
        )
    reason = (
        f"On dev, {dev_check.points_text()} reach the bar; on test, {test_check.points_text()} meet it "
        f"(95% lower bounds {test_check.bounds_text()})."
    )
    bias_run = max_flip_rate = None
    if kind.bias_battery:
        max_flip_rate = bias_bar(project=version.judge.project)
        bias_run = latest_bias_run(version)
        if bias_run is None:
            return replace(
                refuse(
                    f"{version} has no finished bias battery: run the bias battery (on the judge's page, or POST "
                    f"/api/v1/judge-versions/{version.pk}/bias-runs) before promoting it. An LLM judge is promoted "
                    f"only when no bias flips more than {flip_percent(max_flip_rate)} of its dev verdicts."
                ),
                max_flip_rate=max_flip_rate,
            )
        problems = bias_problems(bias_run.report, max_flip_rate=max_flip_rate)
        if problems:
            return replace(
                refuse(
                    f"The bias battery of {version} (run #{bias_run.pk}) does not pass the bias bar of "
                    f"{flip_percent(max_flip_rate)}: {'; '.join(problems)}. Read the flipped traces, make the judge "
                    "steadier (a sharper definition or instructions, other examples), and run the bias battery on "
                    "the new version."
                ),
                bias_run=bias_run,
                max_flip_rate=max_flip_rate,
            )
        reason += f" Its bias battery (run #{bias_run.pk}) passes the bias bar of {flip_percent(max_flip_rate)}."
    return Eligibility(
        True, reason, dev_run, test_run, min_tpr, min_tnr, dev_check, test_check, bias_run, max_flip_rate
    )


@transaction.atomic
def judge_version_promote(
    *, version: JudgeVersion, user: AbstractBaseUser | None = None, comment: str = ""
) -> Promotion:
    """Makes `version` its criterion's promoted judge on its test run's evidence, ending the previous promotion.
    Raises PromotionRefused with the reason (RULE)."""
    criterion = Criterion.objects.select_for_update().get(pk=version.judge.criterion_id)
    check = eligibility(version)
    if not check.eligible:
        raise PromotionRefused(check.reason)
    now = timezone.now()
    current = Promotion.objects.filter(criterion=criterion, ended_at=None).first()
    if current is not None:
        # Promoting the current version again changes nothing, unless its promotion predates test evidence: then
        # the new promotion records the test run it now meets the bar on.
        if current.version_id == version.pk and current.on_test_evidence:
            return current
        current.ended_at, current.ended_by = now, user
        current.save(update_fields=["ended_at", "ended_by"])
    assert check.dev_run is not None and check.test_run is not None  # eligible: both runs exist
    return Promotion.objects.create(
        criterion=criterion,
        version=version,
        test_run=check.test_run,
        report=check.test_run.report or {},
        evidence_split=Promotion.EvidenceSplit.TEST,
        dev_run=check.dev_run,
        dev_report=check.dev_run.report or {},
        min_tpr=check.min_tpr,
        min_tnr=check.min_tnr,
        bias_run=check.bias_run,
        bias_report=(
            {**(check.bias_run.report or {}), "run": check.bias_run.pk, "max_flip_rate": check.max_flip_rate}
            if check.bias_run is not None
            else {}
        ),
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

# The bar must be better than a coin: at 0.5 a judge that always says "pass" would clear the TNR half of it. And
# below 1: a 95% lower bound never reaches 100%, so at a bar of 1 no judge could ever be promoted.
BAR_MIN_EXCLUSIVE, BAR_MAX_EXCLUSIVE = 0.5, 1.0
BAR_RANGE_ERROR = "must be above 0.5 and below 1 (a judge must beat a coin; no number of labels shows 100%)"


class Bar(NamedTuple):
    """The project's one bar: the TPR and TNR a judge must reach ("aligned", the cost ladder, the charts' target
    line and promotion all read it)."""

    min_tpr: float
    min_tnr: float

    @property
    def text(self) -> str:
        """ "TPR ≥ 90% and TNR ≥ 90%"."""
        return f"TPR ≥ {percent(self.min_tpr)} and TNR ≥ {percent(self.min_tnr)}"

    def check(self, report: dict | None) -> BarCheck:
        """A run's report against this bar (judges.evidence.bar_check)."""
        return bar_check(report, min_tpr=self.min_tpr, min_tnr=self.min_tnr)


def promotion_bar(*, project: Project) -> Bar:
    """The project's bar (the default until the expert sets one), the one source every page and decision reads.
    With promotion_bar_set, the only code that knows where the bar is stored."""
    stored = PromotionBar.objects.filter(project=project).values_list("min_tpr", "min_tnr").first()
    return Bar(*stored) if stored else Bar(DEFAULT_MIN_TPR, DEFAULT_MIN_TNR)


@transaction.atomic
def promotion_bar_set(
    *,
    project: Project,
    min_tpr: float,
    min_tnr: float,
    user: AbstractBaseUser | None = None,
    max_flip_rate: float | None = None,
) -> Bar:
    """Sets the project's bar, by `user` (the expert; the view checks), and the bias bar when `max_flip_rate` is
    given (else it stays as it is). Current promotions keep the bar they were promoted under (it is on their
    record); the judges page warns about any that would not be promoted now."""
    for name, value in (("min_tpr", min_tpr), ("min_tnr", min_tnr)):
        # Written so that NaN fails too: every comparison with it is false.
        if not BAR_MIN_EXCLUSIVE < value < BAR_MAX_EXCLUSIVE:
            raise DomainError(f"{name}: {BAR_RANGE_ERROR}, got {value} for project {project.slug!r}")
    defaults = {"min_tpr": min_tpr, "min_tnr": min_tnr}
    if max_flip_rate is not None:
        if not FLIP_BAR_MIN <= max_flip_rate <= FLIP_BAR_MAX:
            raise DomainError(
                f"max_flip_rate: {FLIP_BAR_RANGE_ERROR}, got {max_flip_rate} for project {project.slug!r}"
            )
        defaults["max_flip_rate"] = max_flip_rate
    PromotionBar.objects.update_or_create(project=project, defaults=defaults)
    return Bar(min_tpr, min_tnr)


# The bias bar: 0 tolerates no flip at all; above one half, a bias would decide more verdicts than the judge does.
FLIP_BAR_MIN, FLIP_BAR_MAX = 0.0, 0.5
FLIP_BAR_RANGE_ERROR = "must be from 0 to 0.5 (the highest share of verdicts a bias may flip)"


def bias_bar(*, project: Project) -> float:
    """The project's bias bar: the highest flip rate an LLM judge's bias battery may show to be promoted (the
    default until the expert sets one)."""
    stored = PromotionBar.objects.filter(project=project).values_list("max_flip_rate", flat=True).first()
    return DEFAULT_MAX_FLIP_RATE if stored is None else stored


# --- what the pages show -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CriterionPromotion:
    """A criterion's current promotion and whether the promoted version would still be promoted today."""

    promotion: Promotion | None
    # Set when the promoted version's latest runs no longer satisfy RULE under the current bar, or when it was
    # promoted on dev evidence only (before test runs were required): a warning, not a demotion.
    warning: str = ""


def criterion_promotion(promotion: Promotion | None) -> CriterionPromotion:
    if promotion is None:
        return CriterionPromotion(promotion=None)
    check = eligibility(promotion.version)
    warning = ""
    if not promotion.on_test_evidence:
        warning = "Promoted on dev evidence only, before a test run was required: " + (
            "its test run now meets the bar; promote it again to record that evidence."
            if check.eligible
            else check.reason
        )
    elif not check.eligible:
        warning = f"Promoted, but it would not be promoted today: {check.reason}"
    return CriterionPromotion(promotion=promotion, warning=warning)


def criterion_promotions(*, project: Project) -> dict[int, CriterionPromotion]:
    """criterion id → its promotion state, for the judges page: one query for the promotions and two per promoted
    criterion (its version's latest dev and test runs; two more for an LLM judge's bias bar and battery), so
    bounded by the number of criteria, not of traces or runs."""
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
    # The version's latest dev and test runs and how each stands against the bar, shown side by side.
    dev_run: JudgeRun | None = None
    test_run: JudgeRun | None = None
    dev_check: BarCheck | None = None
    test_check: BarCheck | None = None
    # The current promotion of this version predates test evidence and the version now qualifies: it may be
    # promoted again to record the test run.
    renewable: bool = False


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
        is_current = promotion is not None and promotion.version_id == version.pk
        states[version.number] = VersionPromotion(
            number=version.number,
            eligible=check.eligible,
            reason=check.reason,
            is_current=is_current,
            dev_run=check.dev_run,
            test_run=check.test_run,
            dev_check=check.dev_check,
            test_check=check.test_check,
            renewable=is_current and check.eligible and not promotion.on_test_evidence,
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
    """Every promotion of the project, newest first, at most `limit`: who promoted which version, on what test
    evidence (dev beside it) under which bar, and when and by whom it ended."""
    promotions = list(
        Promotion.objects.filter(criterion__project=project)
        .select_related("criterion", "version__judge", "promoted_by", "ended_by", "dev_run", "test_run")
        .order_by("-promoted_at", "-id")[: limit + 1]
    )
    return PromotionHistory(promotions=promotions[:limit], capped=len(promotions) > limit)
