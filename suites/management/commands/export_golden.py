"""`export_golden --project SLUG [--version N] PATH|-`: one version of the golden set as JSONL.

Each line is the trace as `export_traces` writes it plus `"golden": {"reason", "comment", "version"}`;
`import_traces` reads the file back (it ignores the `golden` key). The current version by default.
"""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project
from annotation.services import DomainError
from suites.golden import golden_current_version, golden_jsonl


class Command(BaseCommand):
    help = "Export a version of a project's golden set (the current one by default) as JSONL."

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # `--version N` picks a golden-set version; it replaces Django's --version (the Django release).
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH", help="output file, or - for standard output")
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--version", type=int, metavar="N", help="a version number; default: the current one")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["path"]
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        version = options["version"]
        if version is None:
            version = golden_current_version(project=project)
            if not version:
                raise CommandError(f"the golden set of {project.slug} is empty: nothing to export")
        if version < 1:
            raise CommandError(f"--version: versions start at 1, not {version}")
        try:
            lines = golden_jsonl(project=project, version=version)
        except DomainError as exc:
            raise CommandError(f"--version: {exc}") from None
        count = 0
        if path == "-":
            for line in lines:
                sys.stdout.buffer.write(line)
                count += 1
            sys.stdout.buffer.flush()
        else:
            try:
                out = open(path, "wb")  # noqa: SIM115 - closed below, after streaming
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror or exc}") from None
            with out:
                for line in lines:
                    out.write(line)
                    count += 1
        # The summary goes to stderr so that `-` output stays a clean data stream.
        self.stderr.write(f"exported {count} traces of {project.slug} golden set v{version} to {path}")
