"""A judge run's disagreements with the expert, as a review session. The expert labels each trace again blind,
seeing neither the earlier label nor the judge's verdict, and only then decides between the two with both revealed
(annotation.relabels): shown the judge first, labels drift toward it and inflate its measured agreement."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser

from annotation.models import ReviewSession
from annotation.services import DomainError
from annotation.sessions import MAX_SIZE, review_session_store
from judges.models import JudgeRun
from judges.selectors import DISAGREEMENT_KINDS, run_disagreements

KIND_LABELS = {"false_pass": "false passes", "false_fail": "false fails"}


def disagreement_session_create(
    *, run: JudgeRun, created_by: AbstractBaseUser, kind: str | None = None, size: int = MAX_SIZE
) -> ReviewSession:
    """A session of the run's disagreements (of one kind, or both), in trace order, each item carrying the judge's
    verdict and reasoning as they are now, for the reveal after the blind label. Its name says neither kind nor
    direction, which would tell the expert the earlier labels. Raises DomainError when the run is unfinished or
    agrees everywhere."""
    if run.status != JudgeRun.Status.DONE:
        raise DomainError(f"Run #{run.pk} is {run.status}: only a finished run's disagreements can be reviewed.")
    if kind is not None and kind not in DISAGREEMENT_KINDS:
        raise DomainError(f"Unknown kind of disagreement “{kind}”; choose false_pass or false_fail.")
    if not 1 <= size <= MAX_SIZE:
        raise DomainError(f"The session size must be from 1 to {MAX_SIZE} traces; got {size}.")
    version = run.version
    judge = version.judge
    judgments = list(run_disagreements(run=run, kind=kind, limit=size))
    if not judgments:
        raise DomainError(f"Run #{run.pk} has no {KIND_LABELS.get(kind or '', 'disagreements')} to review.")
    items = [
        (
            j.trace_id,
            {
                "judge": str(version),
                "judge_run": run.pk,
                "criterion": judge.criterion.name,
                "criterion_id": judge.criterion_id,
                "judge_verdict": j.verdict,
                "expert_verdict": j.expert_verdict,
                "reasoning": j.reasoning,
            },
        )
        for j in judgments
    ]
    return review_session_store(
        project=judge.project,
        created_by=created_by,
        strategy=ReviewSession.Strategy.DISAGREEMENTS,
        name=f"{version} on {run.split}: disagreements to re-label blind",
        params={"judge_run": run.pk, "judge": str(version), "split": run.split, **({"kind": kind} if kind else {})},
        items=items,
    )
