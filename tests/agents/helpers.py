"""Agent trials for the agents tests: traces with a task id and a trial number."""

from __future__ import annotations

import json
from typing import Any

from annotation.models import Project, Trace
from tests.factories import make_trace


def make_trial(*, project: Project, task_id: str, trial: int, passed: bool | None = None, **fields: Any) -> Trace:
    """A trial whose output says DONE (passed=True) or FAILED (passed=False); other fields as given."""
    if passed is not None:
        fields.setdefault("output", "Order refunded. DONE" if passed else "Could not refund. FAILED")
    return make_trace(project=project, external_id=f"{task_id}-trial-{trial}", task_id=task_id, trial=trial, **fields)


def make_trials(*, project: Project, outcomes: dict[str, list[bool]]) -> list[Trace]:
    return [
        make_trial(project=project, task_id=task_id, trial=i + 1, passed=passed)
        for task_id, results in outcomes.items()
        for i, passed in enumerate(results)
    ]


def state(**values: Any) -> str:
    return json.dumps(values)


DONE = {"check": "contains", "value": "DONE"}
