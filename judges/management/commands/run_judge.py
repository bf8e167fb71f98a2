"""`run_judge --project SLUG --judge NAME [--version N] --split train|dev|test|all [--json] [--inline]`: run a judge
version over a split through the worker (or in this process) and print its alignment report."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from annotation.services import DomainError
from judges.management.commands._common import JudgeVersionCommand, add_run_arguments, wait_for_run
from judges.models import JudgeRun
from judges.services import judge_run_create, judge_run_enqueue, judge_run_execute
from judges.stats import METRICS


class Command(JudgeVersionCommand):
    help = "Run a judge over a split and print the alignment report (one JSON object with --json)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        parser.add_argument("--split", required=True, choices=JudgeRun.Split.values)
        add_run_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        version = self.judge_version(options)
        try:
            if options["inline"]:
                run = judge_run_execute(run=judge_run_create(version=version, split=options["split"]))
            else:
                run = self._wait(judge_run_enqueue(version=version, split=options["split"]), options["timeout"])
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        if run.status != JudgeRun.Status.DONE:
            raise CommandError(f"run {run.pk} ended {run.status}: {run.error or 'no report'}")
        if options["json"]:
            self.stdout.write(json.dumps(run.report, sort_keys=True))
        else:
            self._print(run)

    def _wait(self, run: JudgeRun, timeout: float) -> JudgeRun:
        return wait_for_run(
            run,
            timeout=timeout,
            execute=lambda r: judge_run_execute(run=r),
            taking_over="judging in this process",
            name=f"run {run.pk}",
            stderr=self.stderr,
        )

    def _print(self, run: JudgeRun) -> None:
        report = run.report
        self.stdout.write(
            f"{run.version} on {run.split}: n={report['n']} tp={report['tp']} fn={report['fn']} "
            f"fp={report['fp']} tn={report['tn']} errors={report['errors']}"
        )
        if report.get("skipped"):
            by_reason = report.get("skipped_reasons", {})
            reasons = "; ".join(reason if len(by_reason) == 1 else f"{n} {reason}" for reason, n in by_reason.items())
            self.stdout.write(f"skipped: {report['skipped']} ({reasons})")
        for name in METRICS:
            value, interval = report[name], report["ci"][name]
            if value is None:
                self.stdout.write(f"  {name:<15} undefined")
            else:
                bounds = "" if interval is None else f"  95% CI [{interval[0]:.3f}, {interval[1]:.3f}]"
                self.stdout.write(f"  {name:<15} {value:.3f}{bounds}")
