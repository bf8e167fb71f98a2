"""`evalsuite --project SLUG --candidates FILE.jsonl [--baseline NAME|ID] [--name LABEL] [--criteria a,b]
[--include-llm] [--alpha 0.05] [--junit PATH] [--json]`: the regression suite for CI.

Exit status: 0 when every judged criterion passes, 1 when one regressed significantly, fell under its threshold or
had judgments that errored, 2 on bad input (each problem on stderr as `line N: reason`; nothing stored).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from annotation.models import Project
from annotation.trace_format import FormatError, read_jsonl
from suites.evalsuite import DEFAULT_ALPHA, SuiteInputError, evalsuite_run
from suites.junit import junit_xml
from suites.suite_stats import format_table

BAD_INPUT = 2


class Command(BaseCommand):
    # CI runs this on every commit: the system checks would load every URL module (the API, pandas) for nothing.
    requires_system_checks: list[str] = []
    help = (
        "Judge candidate outputs for the golden inputs with the promoted judges and compare them with a baseline. "
        "Exit 0 pass, 1 regression / under threshold / judge errors, 2 bad input."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument(
            "--candidates", required=True, metavar="FILE.jsonl", help='one {"id", "output"} per golden id; - for stdin'
        )
        parser.add_argument("--baseline", metavar="NAME|ID", help="an earlier run (default: the golden outputs)")
        parser.add_argument("--name", default="", metavar="LABEL", help="label this run (a release, a commit)")
        parser.add_argument("--criteria", metavar="A,B", help="only these criteria (names, comma-separated)")
        parser.add_argument("--include-llm", action="store_true", help="also run promoted LLM judges (nightly)")
        parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="significance level (default 0.05)")
        parser.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
        parser.add_argument("--json", action="store_true", help="print the result as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        self.as_json = options["json"]
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            self._bad_input([f"--project: no project {options['project']!r}"])
        criteria = None
        if options["criteria"] is not None:
            criteria = [name.strip() for name in options["criteria"].split(",") if name.strip()]
            if not criteria:
                self._bad_input(["--criteria: name at least one criterion"])
        if options["junit"] and not Path(options["junit"]).resolve().parent.is_dir():
            # Checked before judging: a run stored and then not reported would be worse than no run.
            self._bad_input([f"--junit: no directory {str(Path(options['junit']).resolve().parent)!r}"])
        path = options["candidates"]
        try:
            stream = sys.stdin.buffer if path == "-" else Path(path).open("rb")  # noqa: SIM115 — closed below
        except OSError as exc:
            self._bad_input([f"--candidates: cannot read {path}: {exc.strerror}"])
        try:
            with stream:
                records = list(read_jsonl(stream, max_bytes=settings.EVALSTUDIO_MAX_TRACE_BYTES))
        except FormatError as exc:
            self._bad_input([f"--candidates: {exc}"])
        try:
            outcome = evalsuite_run(
                project=project,
                records=records,
                baseline=options["baseline"],
                name=options["name"],
                include_llm=options["include_llm"],
                criteria=criteria,
                alpha=options["alpha"],
                candidates_file="stdin" if path == "-" else Path(path).name,
            )
        except SuiteInputError as exc:
            self._bad_input(exc.errors)
        if options["junit"]:
            Path(options["junit"]).write_bytes(junit_xml(outcome.result, outcome.cases))
        if not options["json"]:
            self.stdout.write(format_table(outcome.result))
        else:
            self.stdout.write(json.dumps(outcome.result, sort_keys=True))
            # The table shows the warnings; with --json stdout is for machines, so people read them on stderr.
            for warning in outcome.result["warnings"]:
                self.stderr.write(f"warning: {warning}")
        if outcome.exit_code:
            sys.exit(outcome.exit_code)

    def _bad_input(self, errors: list[str]) -> None:
        if self.as_json:  # a script parsing stdout gets an object whatever happened
            self.stdout.write(json.dumps({"exit_code": BAD_INPUT, "errors": errors}))
        for error in errors:
            self.stderr.write(error)
        self.stderr.write("bad input: nothing was run or stored (exit 2)")
        sys.exit(BAD_INPUT)
