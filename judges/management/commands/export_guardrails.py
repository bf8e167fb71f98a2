"""`export_guardrails --project SLUG OUT_DIR`: the project's guardrail-ready checks as a self-contained Python module
with a pytest file of the expert-labelled examples they must keep agreeing with (judges.guardrails_export)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from judges.guardrails_export import MODULE_FILE, TEST_FILE, guardrails_export
from judges.management.commands._common import project_by_slug


class Command(BaseCommand):
    help = "Write the project's guardrail-ready checks as a Python module (no EvalStudio needed) and its pytest file."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("out_dir", metavar="OUT_DIR", help="the folder to write into (created if missing)")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_by_slug(options["project"])
        out_dir = Path(options["out_dir"])
        if out_dir.exists() and not out_dir.is_dir():
            raise CommandError(f"OUT_DIR: {out_dir} exists and is not a folder")
        summary = guardrails_export(project=project, out_dir=out_dir)
        if not summary.checks:
            self.stderr.write(
                f"Project {project.slug!r} has no guardrail-ready check: the module allows every answer. The expert "
                "marks an aligned assertion check guardrail-ready on its judge page."
            )
        self.stdout.write(
            f"Wrote {out_dir / MODULE_FILE} ({summary.checks} checks) and {out_dir / TEST_FILE} "
            f"({summary.examples} expert-labelled examples, {summary.disagreements} known disagreements"
            + (f", {summary.skipped} left out: the pattern ran out of time on them" if summary.skipped else "")
            + f"). Check them with: python -m pytest {out_dir}"
        )
