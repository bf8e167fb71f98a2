"""A calibration rater: a second member labels a sample of the expert's traces blind, so that the agreement two
people reach on each criterion is measured (the method expects binary labels to reach κ 0.6–0.8), without giving
anyone but the expert authority: the rater's labels (RaterLabel) never feed judges, splits or suites.

The expert invites a member (not themself) with a sample size. The sample is the expert's labelled traces in the
project's stored random order, the same for the rater every time; the rater answers, blind, each criterion the
expert labelled on a trace — seeing the trace and nothing anyone said about it.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from annotation.models import CalibrationRater, Label, Membership, Project, RaterLabel, Trace
from annotation.rereviews import Answer, answers_check, expert_labelled_criteria
from annotation.services import DomainError

MAX_SAMPLE = 500


def _require_expert(project: Project, user: AbstractBaseUser) -> None:
    if project.expert_id is None or project.expert_id != user.pk:
        raise DomainError("Only the project's expert invites a calibration rater")


@transaction.atomic
def rater_invite(
    *, project: Project, expert: AbstractBaseUser, user: AbstractBaseUser, sample_size: int = 50
) -> CalibrationRater:
    """Ask a member to label a sample blind. Inviting someone who rated before resumes their sample."""
    _require_expert(project, expert)
    if user.pk == project.expert_id:
        raise DomainError("The expert cannot be their own calibration rater; blind re-reviews measure that")
    if not Membership.objects.filter(project=project, user=user).exists():
        raise DomainError(f"{user.get_username()} is not a member of {project.name}; invite them to the project first")
    if not 1 <= sample_size <= MAX_SAMPLE:
        raise DomainError(f"Sample size: from 1 to {MAX_SAMPLE} traces; got {sample_size}.")
    rater, _ = CalibrationRater.objects.update_or_create(
        project=project, user=user, defaults={"sample_size": sample_size, "invited_by": expert, "ended_at": None}
    )
    return rater


def rater_end(*, rater: CalibrationRater, expert: AbstractBaseUser) -> None:
    """Stop asking; what the rater labelled stays and keeps counting."""
    _require_expert(rater.project, expert)
    CalibrationRater.objects.filter(pk=rater.pk, ended_at=None).update(ended_at=timezone.now())


def rater_for(*, project: Project, user: AbstractBaseUser) -> CalibrationRater | None:
    """The user's current calibration assignment in the project, if any."""
    return CalibrationRater.objects.filter(project=project, user_id=user.pk, ended_at=None).first()


def _sample(rater: CalibrationRater) -> list[int]:
    # A trace the expert labelled is reviewed (label_submit and imports both put it in the review log), and a label
    # is on its trace's project's criteria: so the sample is a walk of the reviewed traces in the stored random
    # order (index trace_reviewed_random), keeping those with an expert label, until sample_size.
    expert_labelled = Label.objects.filter(trace_id=OuterRef("pk"), author_id=rater.project.expert_id)
    return list(
        Trace.objects.filter(project_id=rater.project_id, reviewed_at__isnull=False)
        .filter(Exists(expert_labelled))
        .order_by("shuffle_key", "id")
        .values_list("pk", flat=True)[: rater.sample_size]
    )


def calibration_progress(*, rater: CalibrationRater) -> tuple[int, int]:
    """(traces rated, traces in the sample)."""
    sample = _sample(rater)
    done = RaterLabel.objects.filter(rater=rater, trace_id__in=sample).values("trace_id").distinct().count()
    return done, len(sample)


def calibration_next(*, rater: CalibrationRater) -> Trace | None:
    """The sample's next trace the rater has not rated, or None when the sample is done."""
    rated = set(RaterLabel.objects.filter(rater=rater).values_list("trace_id", flat=True))
    for trace_id in _sample(rater):
        if trace_id not in rated:
            return Trace.objects.select_related("project").get(pk=trace_id)
    return None


@transaction.atomic
def calibration_submit(*, rater: CalibrationRater, trace: Trace, answers: dict[int, Answer]) -> list[RaterLabel]:
    """The rater's blind verdicts on one sampled trace: every criterion the expert labelled on it, once."""
    if rater.ended_at is not None:
        raise DomainError("The expert ended this calibration; thank you — nothing more to label")
    if trace.pk not in _sample(rater):
        raise DomainError(f"Trace {trace.external_id} is not in your calibration sample.")
    criteria = {c.pk: c for c in expert_labelled_criteria(trace=trace)}
    answers_check(criteria=criteria, answers=answers, not_asked="Criterion #{pk} is not asked on this trace.")
    try:
        with transaction.atomic():
            return RaterLabel.objects.bulk_create(
                RaterLabel(rater=rater, trace=trace, criterion_id=pk, verdict=a.verdict, critique=a.critique.strip())
                for pk, a in answers.items()
            )
    except IntegrityError:
        raise DomainError(f"You already rated {trace.external_id}; on to the next one.") from None
