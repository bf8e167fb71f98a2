"""`import_judgments --project SLUG --judge NAME PATH`: verdicts made elsewhere, for an external judge."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.services import DomainError
from judges.management.commands._common import judge_by_name, project_by_slug
from judges.services import judgments_import


class Command(BaseCommand):
    help = (
        'Import JSONL verdicts {"id", "verdict", "reasoning"} into an external judge and print its alignment on '
        "all labelled traces. Nothing is written when any line is bad (each is reported); exit status 1 then."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH")
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--judge", required=True, metavar="NAME")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_by_slug(options["project"])
        judge = judge_by_name(project, options["judge"])
        path = options["path"]
        try:
            with open(path, "rb") as stream:
                result = judgments_import(judge=judge, stream=stream, source_name=path)
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror or exc}") from None
        except DomainError as exc:
            raise CommandError(f"{path}: {exc}") from None
        if result.rejected:
            for rejection in result.rejected:
                self.stdout.write(str(rejection))
            self.stdout.write("nothing was imported")
            raise CommandError(f"{len(result.rejected)} rejected", returncode=1)
        self.stdout.write(f"imported {result.imported} judgments")
        self.stdout.write(json.dumps(result.run.report, sort_keys=True))
