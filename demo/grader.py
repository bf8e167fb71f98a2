"""The demo project's outcome grader, called by `load_demo` so the agents page is not empty in `make run`."""

from __future__ import annotations

from agents.models import OutcomeGrader
from agents.services import grader_create, grading_run_create, grading_run_execute
from annotation.models import Project

DEMO_GRADER = "no-unverifiable-timeline"
# The demo agent sometimes ends a trial promising a wait it cannot know ("within 10 business days", "in roughly
# 4 minutes"); a bank's support agent must not. The check reads only the agent's final message.
DEMO_CONFIG = {
    "check": "regex",
    "pattern": r"\b(within|in roughly|in about)\s+\d+\s+(business\s+)?(minutes|hours|days)\b",
    "must_match": False,
    "ignore_case": True,
}


def demo_outcome_grader(project: Project) -> OutcomeGrader | None:
    """Create the demo grader when missing and grade the demo trials with it; None when it already existed.
    Safe to call any number of times."""
    if OutcomeGrader.objects.filter(project=project, name=DEMO_GRADER).exists():
        return None
    grader = grader_create(
        project=project,
        name=DEMO_GRADER,
        target=OutcomeGrader.Target.FINAL_OUTPUT,
        config=DEMO_CONFIG,
        description="Fails a trial whose final answer promises a wait time the agent cannot know.",
    )
    grading_run_execute(run=grading_run_create(grader=grader))
    return grader
