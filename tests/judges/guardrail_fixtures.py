"""A project with aligned assertion checks, their dev and test runs done: what guardrail tests start from."""

from __future__ import annotations

from annotation.models import Criterion, Project
from judges.models import Judge
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.factories import make_criterion, make_split_labels

NO_PHONE = {"check": "regex", "pattern": r"\d{3}-\d{4}", "must_match": False}
NO_APOLOGY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
# Fails good answers that happen to be long: not guardrail material.
SHORT = {"check": "length", "max_chars": 20}

GOOD = "Your card is frozen; it can be unfrozen from the app at any time."
PASSES = [(GOOD, "pass")] * 12 + [("Fees are listed on the pricing page.", "pass")] * 6


def labelled_criterion(
    project: Project, name: str, bad_output: str, passes: list[tuple[str, str]] | None = None
) -> Criterion:
    """A criterion whose expert passes the good answers (PASSES unless given) and fails `bad_output`, on dev and
    test alike."""
    criterion = make_criterion(project=project, name=name, definition=f"No {name}")
    outputs = [*(passes or PASSES), (bad_output, "fail"), (bad_output, "fail"), (bad_output, "fail")]
    for split in ("dev", "test"):
        make_split_labels(criterion=criterion, split=split, outputs=outputs, prefix=f"{name}-{split}")
    return criterion


def run_dev_and_test(judge: Judge) -> None:
    for split in ("dev", "test"):
        judge_run_execute(run=judge_run_create(version=judge.latest_version(), split=split))


def aligned_judge(
    project: Project,
    *,
    criterion: str,
    name: str,
    config: dict,
    bad_output: str,
    passes: list[tuple[str, str]] | None = None,
) -> Judge:
    judge = judge_create(
        project=project,
        criterion=labelled_criterion(project, criterion, bad_output, passes),
        name=name,
        kind="assertion",
        config=config,
    )
    run_dev_and_test(judge)
    return judge
