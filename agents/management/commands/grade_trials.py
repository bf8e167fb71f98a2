"""`grade_trials --project SLUG --grader NAME [--json]`: grade the project's ungraded trials with an outcome grader,
in this process, and print pass@k / pass^k for k = 1..10."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from agents.models import GradingRun, OutcomeGrader
from agents.reliability import overall
from agents.selectors import grader_totals, task_counts
from agents.services import grading_run_create, grading_run_execute
from annotation.models import Project


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:5.1f}%"


def _ci(interval: tuple[float, float] | None) -> str:
    return "" if interval is None else f"[{interval[0] * 100:.1f}, {interval[1] * 100:.1f}]"


class Command(BaseCommand):
    help = "Grade the ungraded agent trials of a project with an outcome grader and print pass@k and pass^k."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--grader", required=True, metavar="NAME")
        parser.add_argument("--json", action="store_true", help="print the run and the k table as one JSON object")
        parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for a run already going")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"--project: no project with slug {options['project']!r}")
        grader = OutcomeGrader.objects.filter(project=project, name=options["grader"]).first()
        if grader is None:
            names = ", ".join(OutcomeGrader.objects.filter(project=project).values_list("name", flat=True))
            raise CommandError(
                f"--grader: project {project.slug} has no grader {options['grader']!r} (graders: {names or 'none'})"
            )
        run = grading_run_execute(run=grading_run_create(grader=grader))
        deadline = time.monotonic() + options["timeout"]
        while not run.is_finished and time.monotonic() < deadline:
            time.sleep(0.5)  # a worker holds a run of this grader already: wait for it rather than grade twice
            run.refresh_from_db()
        if run.status != GradingRun.Status.DONE:
            raise CommandError(f"grading run {run.pk} ended {run.status}: {run.error or 'still running'}")
        totals = grader_totals(grader=grader)
        rows = overall(task_counts(grader=grader))
        if options["json"]:
            payload = {"run": run.pk, "graded": run.graded, "totals": asdict(totals), "k": [asdict(r) for r in rows]}
            self.stdout.write(json.dumps(payload, sort_keys=True))
            return
        self.stdout.write(
            f"Graded {run.graded} new trial(s) with {grader.name!r}. {totals.tasks} task(s), {totals.trials} graded "
            f"trial(s): {totals.passed} pass, {totals.failed} fail, {totals.errors} error(s)."
        )
        self.stdout.write(f"{'k':>2}  {'tasks':>5}  {'pass@k':>7} {'95% CI':<14} {'pass^k':>7} {'95% CI':<14} gap")
        for row in rows:
            if not row.tasks:
                continue
            self.stdout.write(
                f"{row.k:>2}  {row.tasks:>5}  {_pct(row.pass_at_k):>7} {_ci(row.pass_at_k_ci):<14} "
                f"{_pct(row.pass_hat_k):>7} {_ci(row.pass_hat_k_ci):<14} {_pct(row.gap)} {_ci(row.gap_ci)}"
            )
