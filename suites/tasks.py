"""Celery tasks for suite runs posted with `"wait": false` and for pairwise comparisons: thin wrappers that load the
run and judge it.

A suite run is a worker run (core.runs): safe to run twice (conditional claim, unique verdicts); a delivery that
finds it running elsewhere retries when that worker's heartbeat would be stale, and a worker that starts queues
again the runs that are waiting or whose worker died.
"""

from __future__ import annotations

from celery import Task

from core.runs import run_retry_later, run_task
from suites.evalsuite import suite_run_execute
from suites.models import PairwiseComparison, SuiteRun
from suites.pairwise import pairwise_comparison_execute


# A suite with LLM judges (--include-llm) makes one call per golden input and criterion, plus the baseline's.
@run_task(model=SuiteRun, soft_time_limit=30 * 60, time_limit=32 * 60)
def suite_run_task(self: Task, run_id: int) -> int | None:
    run = SuiteRun.objects.filter(pk=run_id).first()
    if run is None:
        return None
    outcome = suite_run_execute(run=run)
    if outcome is None:
        run_retry_later(run=run, task=self)
        return None
    return outcome.exit_code


# Two LLM calls per golden case both runs answered, asked in parallel a chunk at a time.
@run_task(model=PairwiseComparison, soft_time_limit=30 * 60, time_limit=32 * 60)
def pairwise_comparison_task(self: Task, comparison_id: int) -> bool | None:
    comparison = PairwiseComparison.objects.filter(pk=comparison_id).first()
    if comparison is None:
        return None
    if not pairwise_comparison_execute(comparison=comparison):
        run_retry_later(run=comparison, task=self)
        return None
    return True
