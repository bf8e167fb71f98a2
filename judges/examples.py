"""Few-shot examples from a run's disagreements: an LLM judge's next version gets the trace the expert labelled,
with the expert's critique as the example's reasoning. Train-split traces only, or the judge would be measured on
its own examples; and never from a test run: test is held out to report a version (promotion is decided there), so
a version may be run on test again and again but no version is made from what its test run got wrong. Dev is where
the judge is iterated on."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from annotation.models import Label, Trace
from annotation.services import DomainError
from judges import kinds
from judges.models import Judge, JudgeRun, JudgeVersion
from judges.selectors import split_key
from judges.services import judge_version_create
from judges.splits import split_of


@transaction.atomic
def judge_example_add(
    *, judge: Judge, external_id: str, run: JudgeRun, user: AbstractBaseUser | None = None
) -> JudgeVersion:
    """A new version of the LLM judge with the trace `external_id` (one of the run's disagreements) appended to
    the latest version's few-shot examples. Raises DomainError naming what stands in the way."""
    if judge.kind != Judge.Kind.LLM:
        raise DomainError(f"only LLM judges take few-shot examples; this is a {kinds.get(judge.kind).display} judge")
    if run.split == JudgeRun.Split.TEST:
        raise DomainError(held_out_refusal(run))
    if not external_id:
        raise DomainError("trace: name the trace to add as an example")
    criterion = judge.criterion
    trace = Trace.objects.filter(project=judge.project_id, external_id=external_id).only("id").first()
    if trace is None:
        raise DomainError(f"trace: {external_id!r} is not a trace of this project")
    if not Label.objects.filter(criterion=criterion, trace=trace).exists():
        raise DomainError(f"trace: {external_id!r} has no expert label for {criterion.name!r}")
    split = split_of(split_key(criterion), external_id)
    if split != "train":
        why = (
            "test is held out to report the judge, never to tune it"
            if split == JudgeRun.Split.TEST
            else "the judge would be measured on its own examples"
        )
        raise DomainError(f"trace {external_id!r} is in the {split} split; only train traces can be examples: {why}")
    # Lock the judge before reading its latest config: two quick clicks must each append, not overwrite the other.
    Judge.objects.select_for_update().filter(pk=judge.pk).first()
    latest = judge.latest_version()
    config = dict(latest.config) if latest else {}
    examples = list(config.get("examples", []))
    if external_id in examples:
        raise DomainError(f"trace {external_id!r} is already a few-shot example of v{latest.number}")
    config["examples"] = [*examples, external_id]
    comment = f"Added {external_id} as a few-shot example (a disagreement of run #{run.pk})"
    return judge_version_create(judge=judge, config=config, comment=comment, user=user)


def held_out_refusal(run: JudgeRun) -> str:
    return (
        f"run #{run.pk} is on the test split, which is held out: a version's test run can be repeated but not "
        "tuned on, or the test figures that decide promotion would measure the judge on what it was fitted to. "
        "Iterate on dev; few-shot examples come from train."
    )


HELD_OUT = "held_out"


def disagreement_example_states(
    *, judge: Judge, external_ids: list[str], run: JudgeRun | None = None
) -> dict[str, str]:
    """external id → "addable", "example" (already in the latest version), HELD_OUT (the run is on test) or the
    split that forbids it; {} for a judge that takes no examples."""
    if judge.kind != Judge.Kind.LLM:
        return {}
    if run is not None and run.split == JudgeRun.Split.TEST:
        return dict.fromkeys(external_ids, HELD_OUT)
    latest = judge.latest_version()
    current = set((latest.config if latest else {}).get("examples", []))
    key = split_key(judge.criterion)
    states = {}
    for external_id in external_ids:
        split = split_of(key, external_id)
        states[external_id] = "example" if external_id in current else ("addable" if split == "train" else split)
    return states
