"""`bias_run --project SLUG --judge NAME [--version N] [--json] [--inline]`: run an LLM judge version's bias battery
on the dev split through the worker (or in this process), print each bias's flip rate, and exit 1 when one is over
the project's bias bar (what promotion asks)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from annotation.services import DomainError
from judges.bias import bias_run_create, bias_run_enqueue, bias_run_execute
from judges.management.commands._common import JudgeVersionCommand, add_run_arguments, wait_for_run
from judges.models import BiasRun
from judges.promotions import bias_bar
from judges.providers.bias import BIASES, bias_problems, percent


class Command(JudgeVersionCommand):
    help = "Run an LLM judge version's bias battery on dev and print its flip rates (one JSON object with --json)."

    def add_arguments(self, parser: CommandParser) -> None:
        super().add_arguments(parser)
        add_run_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        version = self.judge_version(options)
        try:
            if options["inline"]:
                run = bias_run_execute(run=bias_run_create(version=version))
            else:
                run = self._wait(bias_run_enqueue(version=version), options["timeout"])
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        if run.status != BiasRun.Status.DONE:
            raise CommandError(f"bias run {run.pk} ended {run.status}: {run.error or 'no report'}")
        max_flip_rate = bias_bar(project=version.judge.project)
        problems = bias_problems(run.report, max_flip_rate=max_flip_rate)
        if options["json"]:
            self.stdout.write(json.dumps({**run.report, "run": run.pk, "max_flip_rate": max_flip_rate}, sort_keys=True))
        else:
            self._print(run, max_flip_rate)
        if problems:
            raise CommandError(f"over the bias bar of {percent(max_flip_rate)}: {'; '.join(problems)}")

    def _wait(self, run: BiasRun, timeout: float) -> BiasRun:
        return wait_for_run(
            run,
            timeout=timeout,
            execute=lambda r: bias_run_execute(run=r),
            taking_over="running it here",
            name=f"bias run {run.pk}",
            stderr=self.stderr,
        )

    def _print(self, run: BiasRun, max_flip_rate: float) -> None:
        report = run.report
        self.stdout.write(
            f"bias battery #{run.pk} of {run.version} on dev: {report['traces']} traces, "
            f"{report['baseline_errors']} without a verdict; bias bar {percent(max_flip_rate)}"
        )
        for name in BIASES:
            result = report["biases"][name]
            if result["skipped"]:
                self.stdout.write(f"  {name:<10} {result['skipped']}")
            elif result["flip_rate"] is None:
                self.stdout.write(f"  {name:<10} measured on no trace ({result['errors']} errors)")
            else:
                low, high = result["ci"]
                self.stdout.write(
                    f"  {name:<10} {percent(result['flip_rate'])} ({result['flipped']}/{result['n']})  "
                    f"95% CI [{percent(low)}, {percent(high)}]"
                )
