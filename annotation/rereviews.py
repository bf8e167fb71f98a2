"""Blind re-review: the expert's self-agreement, measured without a second annotator.

At the project's rate (`Project.rereview_rate`, default 5% of queue steps; 0 turns it off) the review queue
re-serves, instead of the next trace, one the expert labelled at least `rereview_after_days` (default 7) ago, on a
page that shows the trace and nothing anyone said about it: no labels, critiques, notes, feedback or judges. The
expert answers each criterion they had labelled; the answers are SelfReview rows beside the labels, never over
them. Where the two differ, the expert later decides which stands, with a reason (`self_review_decide`); keeping
the re-review changes the label, with its history. judges.reliability turns the pairs into self-agreement (κ and
raw agreement) per criterion: the ceiling on how well any judge can agree with this expert.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import Criterion, Label, Project, SelfReview, Trace, Verdict
from annotation.services import CRITIQUE_MAX_CHARS, DomainError, LabelContext, label_submit

REASON_MAX_CHARS = 5_000
MAX_RATE = 0.5
MAX_AFTER_DAYS = 365
Kept = SelfReview.Kept


def rereview_due(project: Project, *, step: int) -> bool:
    """Whether the expert's `step`-th queue step re-serves an old trace: a draw at the project's rate, seeded by the
    project and the step, so the same walk through the queue re-serves at the same steps (and tests are exact)."""
    rate = project.rereview_rate
    return rate > 0 and random.Random(f"{project.slug}:{project.queue_seed}:{step}").random() < rate


def rereview_candidate(*, project: Project, now: datetime | None = None) -> Trace | None:
    """A trace the expert labelled at least `rereview_after_days` ago and has not re-reviewed since then, drawn at
    random (a random point on the project's stored shuffle order, wrapping): None when there is none."""
    if project.expert_id is None:
        return None
    now = now or timezone.now()
    cutoff = now - timedelta(days=project.rereview_after_days)
    recent = SelfReview.objects.filter(trace__project=project, created_at__gte=cutoff).values("trace_id")
    eligible = (
        Trace.objects.filter(
            project=project,
            labels__author_id=project.expert_id,
            labels__updated_at__lte=cutoff,
        )
        .exclude(pk__in=recent)
        .distinct()
    )
    start = random.randint(-(2**62), 2**62)
    return (
        eligible.filter(shuffle_key__gte=start).order_by("shuffle_key").first()
        or eligible.order_by("shuffle_key").first()
    )


def expert_labelled_criteria(*, trace: Trace) -> list[Criterion]:
    """The criteria the expert labelled on `trace`, in criterion order: what a blind re-review asks again and what a
    calibration rater answers."""
    return list(
        Criterion.objects.filter(labels__trace=trace, labels__author_id=trace.project.expert_id).order_by(
            "position", "id"
        )
    )


@dataclass(frozen=True)
class Answer:
    verdict: str
    critique: str = ""


def answers_check(*, criteria: dict[int, Criterion], answers: dict[int, Answer], not_asked: str) -> None:
    """Blind answers (criterion id → answer) cover exactly the asked `criteria`, each with a verdict and a critique
    within bounds. Raises DomainError naming the criterion (`not_asked`, formatted with `pk`, for an extra one)."""
    missing = sorted(criterion.name for pk, criterion in criteria.items() if pk not in answers)
    if missing:
        raise DomainError(f"Answer every criterion: {', '.join(missing)} has no verdict yet.")
    for pk, answer in answers.items():
        if pk not in criteria:
            raise DomainError(not_asked.format(pk=pk))
        if answer.verdict not in Verdict.values:
            raise DomainError(f"{criteria[pk].name}: choose pass or fail; got {answer.verdict or 'nothing'!r}.")
        if len(answer.critique) > CRITIQUE_MAX_CHARS:
            raise DomainError(f"{criteria[pk].name}: a critique is limited to {CRITIQUE_MAX_CHARS} characters.")


@transaction.atomic
def rereview_submit(
    *, trace: Trace, user: AbstractBaseUser, answers: dict[int, Answer], now: datetime | None = None
) -> list[SelfReview]:
    """Store the expert's blind answers (criterion id → answer) beside the labels they made before. Every criterion
    the expert had labelled on the trace must be answered; the labels themselves are left as they are."""
    project = trace.project
    if project.expert_id is None or project.expert_id != user.pk:
        raise DomainError("Only the project's expert re-reviews traces; their labels are the ground truth")
    labels = {label.criterion_id: label for label in Label.objects.filter(trace=trace, author_id=project.expert_id)}
    if not labels:
        raise DomainError(f"Trace {trace.external_id} has no label of yours to re-review.")
    criteria = {c.pk: c for c in Criterion.objects.filter(pk__in=list(labels))}
    answers_check(
        criteria=criteria,
        answers=answers,
        not_asked="Criterion #{pk} was not labelled on this trace before: nothing to re-review.",
    )
    now = now or timezone.now()
    return SelfReview.objects.bulk_create(
        SelfReview(
            trace=trace,
            criterion_id=pk,
            author=user,
            then_verdict=labels[pk].verdict,
            then_critique=labels[pk].critique,
            then_at=labels[pk].updated_at,
            then_version=labels[pk].criterion_version,
            verdict=answer.verdict,
            critique=answer.critique.strip(),
            criterion_version=criteria[pk].version,
            created_at=now,
        )
        for pk, answer in answers.items()
    )


@transaction.atomic
def self_review_decide(*, review: SelfReview, keep: str, reason: str, user: AbstractBaseUser) -> SelfReview:
    """Which of two differing verdicts stands. Keeping the re-review writes it as the trace's label (a history
    entry); keeping the earlier label leaves the label as it is. Either way the decision and its reason are kept."""
    review = SelfReview.objects.select_for_update().select_related("trace__project", "criterion").get(pk=review.pk)
    project = review.trace.project
    if project.expert_id is None or project.expert_id != user.pk:
        raise DomainError("Only the project's expert decides which label stands")
    if review.decided_at is not None:
        raise DomainError(f"Already decided: you kept {review.get_kept_display()}.")
    if review.agrees:
        raise DomainError("The re-review agrees with the earlier label: there is nothing to decide.")
    if keep not in Kept.values:
        raise DomainError(f"Keep: choose the earlier label or the re-review; got {keep or 'nothing'!r}.")
    reason = reason.strip()
    if not reason:
        raise DomainError("Reason: say why this label stands (the two verdicts differ).")
    if len(reason) > REASON_MAX_CHARS:
        raise DomainError(f"Reason: limited to {REASON_MAX_CHARS} characters.")
    if keep == Kept.NOW:
        label_submit(
            trace=review.trace,
            criterion=review.criterion,
            verdict=review.verdict,
            critique=review.critique,
            user=user,
            context=LabelContext(via="self-review"),
        )
    review.kept, review.reason, review.decided_at = keep, reason, timezone.now()
    review.save(update_fields=["kept", "reason", "decided_at"])
    return review


def rereview_settings_update(*, project: Project, user: AbstractBaseUser, rate: float, after_days: int) -> Project:
    """The expert's re-review rate (0 to 0.5 of queue steps) and minimum age of a label (1 to 365 days)."""
    if project.expert_id is None or project.expert_id != user.pk:
        raise DomainError("Only the project's expert sets how often their own labels are re-reviewed")
    if not 0 <= rate <= MAX_RATE:
        raise DomainError(f"Re-review rate: from 0 (off) to {MAX_RATE:.0%} of queue steps; got {rate:.0%}.")
    if not 1 <= after_days <= MAX_AFTER_DAYS:
        raise DomainError(f"Labels re-reviewed after: from 1 to {MAX_AFTER_DAYS} days; got {after_days}.")
    project.rereview_rate, project.rereview_after_days = rate, after_days
    project.save(update_fields=["rereview_rate", "rereview_after_days"])
    return project
