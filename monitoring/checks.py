"""The checks monitoring runs, from every registered provider (judges.monitored), and what monitoring reads of them.

Monitoring's own provider is the one it was built for: each criterion's promoted judge version (judges). Other apps
register theirs (agents: outcome graders promoted into monitoring). Everything downstream — the drain, the series,
alert rules, the pages — takes a `Check` and its provider, never a judge or a grader as such.
"""

from __future__ import annotations

from django.db.models import Q
from django.urls import reverse

from annotation.models import Criterion, Project
from judges import kinds
from judges.models import JudgeVersion, Promotion
from judges.monitored import Check, CheckProvider, CheckScorer, Subject, provider, providers
from judges.promotions import current_promotions
from judges.stats import ConfusionMatrix
from monitoring.models import MonitoredCheck, MonitoredSeries
from monitoring.series import NO_JUDGE_EVIDENCE, evidence_matrix

JUDGE = "judge"


def criterion_subject(criterion: Criterion, project: Project) -> Subject:
    return Subject(
        provider=JUDGE,
        subject_id=criterion.pk,
        name=criterion.name,
        description=criterion.definition,
        criterion_id=criterion.pk,
        how_to_monitor="Promote an aligned judge version on the judges page",
        how_to_monitor_url=reverse("judge_list", args=[project.slug]),
    )


def promotion_check(promotion: Promotion, project: Project | None = None) -> Check:
    """The check a criterion's current promotion makes: its judge version, corrected by the promotion's report."""
    version = promotion.version
    kind = kinds.get(version.judge.kind)
    return Check(
        subject=criterion_subject(promotion.criterion, project or promotion.criterion.project),
        key=version.pk,
        label=str(version),
        kind=f"{kind.label} judge",
        since=promotion.promoted_at,
        local=kind.local,
        cannot_judge=kind.cannot_judge_new_outputs,
        evidence=promotion.report or None,
        no_evidence=NO_JUDGE_EVIDENCE,
        evidence_source=promotion.evidence_split
        + ("" if promotion.on_test_evidence else " (promoted before test evidence was required)"),
        chunk_size=kind.chunk_size(version),
        warning=kinds.stale_definition(version, criterion_version=promotion.criterion.version),
    )


class PromotedJudges(CheckProvider):
    """A criterion's promoted judge version judges its production traffic; its promotion's confusion counts
    correct the observed pass rate."""

    name = JUDGE
    corrects = True

    def current(self, *, project: Project) -> list[Check]:
        promotions = sorted(current_promotions(project=project).values(), key=lambda p: p.criterion.position)
        return [promotion_check(p, project) for p in promotions]

    def subjects(self, *, project: Project) -> list[Subject]:
        return [criterion_subject(c, project) for c in Criterion.objects.filter(project=project).order_by("position")]

    def subject(self, *, project: Project, subject_id: int) -> Subject | None:
        criterion = Criterion.objects.filter(project=project, pk=subject_id).first()
        return criterion_subject(criterion, project) if criterion else None

    def project_ids(self) -> list[int]:
        promoted = Promotion.objects.filter(ended_at=None)
        return list(promoted.values_list("criterion__project_id", flat=True).distinct().order_by())

    def scorer(self, check: Check) -> CheckScorer:
        return kinds.version_scorer(JudgeVersion.objects.select_related("judge").get(pk=check.key))


def check_provider(check: Check) -> CheckProvider:
    found = provider(check.provider)
    if found is None:
        raise LookupError(f"no monitored-check provider named {check.provider!r} is registered")
    return found


def current_checks(*, project: Project) -> list[Check]:
    """Every check monitoring runs in the project now: each provider's, in registration order."""
    return [check for p in providers() for check in p.current(project=project)]


def current_check(*, project: Project, provider_name: str, subject_id: int) -> Check | None:
    """The check that judges the subject's traffic now, if any."""
    found = provider(provider_name)
    if found is None:
        return None
    return next((c for c in found.current(project=project) if c.subject_id == subject_id), None)


def subject_of(*, project: Project, provider_name: str, subject_id: int) -> Subject | None:
    """The project's subject, or None (an unknown provider, another project's subject)."""
    found = provider(provider_name)
    return found.subject(project=project, subject_id=subject_id) if found else None


def unmonitored_subjects(*, project: Project, checks: list[Check]) -> list[Subject]:
    """The subjects every provider could monitor in the project that no current check monitors."""
    monitored = {(c.provider, c.subject_id) for c in checks}
    return [
        subject
        for p in providers()
        for subject in p.subjects(project=project)
        if (subject.provider, subject.subject_id) not in monitored
    ]


def check_matrix(check: Check | None) -> ConfusionMatrix | None:
    """The confusion counts that correct the check's observed pass rate, or None."""
    return evidence_matrix(check.evidence) if check is not None else None


def series_find(*, project: Project, provider_name: str, subject_id: int) -> MonitoredSeries | None:
    return MonitoredSeries.objects.filter(project=project, provider=provider_name, subject_id=subject_id).first()


def check_rows(*, project: Project, checks: list[Check]) -> dict[tuple[str, int], MonitoredCheck]:
    """(provider, key) → the stored row of each check that has one (a check that never drained has none)."""
    if not checks:
        return {}
    wanted = Q()
    for check in checks:
        wanted |= Q(series__provider=check.provider, key=check.key)
    rows = MonitoredCheck.objects.filter(wanted, series__project=project).select_related("series")
    return {(row.series.provider, row.key): row for row in rows}
