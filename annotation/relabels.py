"""Blind re-review of a judge's disagreements with the expert, and of labels made under an earlier definition.

Shown a judge's verdict and reasoning beside their own label, experts drift toward the judge, and every such move
raises the judge's measured agreement whether or not the judge was right. So a disagreement session shows each
trace blind first: the expert labels it again with neither the earlier label nor the judge in view
(`relabel_blind`). Only then are both revealed, and the expert keeps the blind label or goes back to the earlier
one, saying why when the two differ (`relabel_decide`). The kept label becomes the trace's label (the ground
truth, with its history); the row keeps all four verdicts so that moves toward the judge can be counted per
criterion (`annotation.selectors.relabel_drift`).

A recalibration session (annotation.sessions.recalibration_session_create) walks labels made under an earlier
definition of a criterion the same way, without a judge: label blind under the current words, then decide.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from annotation.models import BlindRelabel, Label, ReviewSession, ReviewSessionTrace, Verdict
from annotation.selectors import relabel_criterion
from annotation.services import CRITIQUE_MAX_CHARS, DomainError, label_submit

REASON_MAX_CHARS = 5_000
Kept = BlindRelabel.Kept


def _require_expert(item: ReviewSessionTrace, user: AbstractBaseUser) -> None:
    expert_id = item.session.project.expert_id
    if expert_id is None or expert_id != user.pk:
        raise DomainError("Only the project's expert can label traces; their labels are the ground truth")


@transaction.atomic
def relabel_blind(*, item: ReviewSessionTrace, verdict: str, critique: str, user: AbstractBaseUser) -> BlindRelabel:
    """Record the expert's blind label for a disagreement or recalibration session's item. The trace's label is
    left as it is: the ground truth changes only with the decision that follows."""
    session = item.session
    _require_expert(item, user)
    if not session.relabels_blind:
        raise DomainError(f"Session “{session.name}” does not re-label blind; label the trace as usual.")
    if verdict not in Verdict.values:
        raise DomainError(f"Verdict: choose pass or fail (p or f); got {verdict or 'nothing'!r}.")
    if len(critique) > CRITIQUE_MAX_CHARS:
        raise DomainError(f"Critique: a critique is limited to {CRITIQUE_MAX_CHARS} characters.")
    criterion = relabel_criterion(item=item)
    if criterion is None:
        raise DomainError(f"The criterion “{(item.reason or {}).get('criterion', '?')}” of this item no longer exists.")
    judge_verdict = (item.reason or {}).get("judge_verdict", "")
    if session.strategy == ReviewSession.Strategy.DISAGREEMENTS and judge_verdict not in Verdict.values:
        raise DomainError(f"Session item #{item.position} holds no judge verdict to compare with.")
    # Two submits of the blind form (a double press of r, two tabs): the item's row lock lets one through.
    ReviewSessionTrace.objects.select_for_update().filter(pk=item.pk).first()
    existing = BlindRelabel.objects.filter(item=item).first()
    if existing is not None:
        raise DomainError(
            f"This trace was already labelled again blind at {timezone.localtime(existing.labelled_at):%H:%M}: "
            "decide between the labels below."
        )
    earlier = Label.objects.filter(trace_id=item.trace_id, criterion=criterion).first()
    return BlindRelabel.objects.create(
        item=item,
        criterion=criterion,
        judge_verdict=judge_verdict,
        earlier_verdict=earlier.verdict if earlier else "",
        earlier_critique=earlier.critique if earlier else "",
        blind_verdict=verdict,
        blind_critique=critique,
        labelled_at=timezone.now(),
        author=user,
    )


@transaction.atomic
def relabel_decide(*, relabel: BlindRelabel, keep: str, reason: str, user: AbstractBaseUser) -> BlindRelabel:
    """Keep the blind label or go back to the earlier one. The kept label is saved as the trace's label (a history
    entry when it changes it), the item counts as revisited, and whether the label moved toward the judge is
    recorded. A written reason is required when the blind verdict differs from the earlier one."""
    relabel = (
        BlindRelabel.objects.select_for_update()
        .select_related("item__session__project", "item__trace__project", "criterion")
        .get(pk=relabel.pk)
    )
    item = relabel.item
    _require_expert(item, user)
    if relabel.is_decided:
        raise DomainError(
            f"This trace was already decided at {timezone.localtime(relabel.decided_at):%H:%M}: "
            f"you kept {relabel.get_kept_display()}."
        )
    if keep not in Kept.values:
        raise DomainError(f"Keep: choose the blind label (b) or the earlier label (e); got {keep or 'nothing'!r}.")
    if keep == Kept.EARLIER and not relabel.earlier_verdict:
        raise DomainError("Keep: the trace had no earlier label on this criterion; keep the blind label.")
    reason = reason.strip()
    if len(reason) > REASON_MAX_CHARS:
        raise DomainError(f"Reason: limited to {REASON_MAX_CHARS} characters.")
    if relabel.verdicts_differ and not reason:
        raise DomainError(
            f"Reason: your blind label ({relabel.blind_verdict}) differs from the earlier one "
            f"({relabel.earlier_verdict}); say why you keep the one you keep."
        )
    if keep == Kept.BLIND:
        verdict, critique = relabel.blind_verdict, relabel.blind_critique
    else:
        verdict, critique = relabel.earlier_verdict, relabel.earlier_critique
    label_submit(trace=item.trace, criterion=relabel.criterion, verdict=verdict, critique=critique, user=user)
    now = timezone.now()
    relabel.kept, relabel.final_verdict, relabel.final_critique = keep, verdict, critique
    relabel.reason, relabel.decided_at = reason, now
    relabel.moved_toward_judge = bool(relabel.earlier_verdict and relabel.judge_verdict) and (
        relabel.earlier_verdict != relabel.judge_verdict and verdict == relabel.judge_verdict
    )
    relabel.save(
        update_fields=["kept", "final_verdict", "final_critique", "reason", "decided_at", "moved_toward_judge"]
    )
    ReviewSessionTrace.objects.filter(pk=item.pk, revisited_at=None).update(revisited_at=now)
    return relabel
