"""`export_taxonomy --project SLUG [--notes] [--format csv|json] PATH|-`: the failure-modes page's downloads from
the command line — the modes with their counts, or (with --notes) every note with its failure modes, streamed."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TextIO

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project
from annotation.taxonomy_io import EXPORT_FORMATS, failure_modes_export, notes_export_csv, notes_export_json


class Command(BaseCommand):
    help = (
        "Export a project's failure modes with their counts, or with --notes every note with its failure modes, as "
        "CSV or JSON. In CSV a note's modes share one cell joined by '; ', and cells that would start a "
        "spreadsheet formula (= + - @) get a leading apostrophe."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH", help="output file, or - for standard output")
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--notes", action="store_true", help="export the notes instead of the failure modes")
        parser.add_argument("--format", choices=EXPORT_FORMATS, help="default: by extension (.json), else csv")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["path"]
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        fmt = options["format"] or ("json" if path.lower().endswith(".json") else "csv")
        if options["notes"]:
            pieces: Iterable[str] = (notes_export_csv if fmt == "csv" else notes_export_json)(project=project)
        else:
            pieces = [failure_modes_export(project=project, fmt=fmt)]
        what = "notes" if options["notes"] else "failure modes"
        if path == "-":
            self._write(pieces, sys.stdout)
            sys.stdout.flush()
        else:
            try:
                out = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below, after streaming
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror or exc}") from None
            with out:
                self._write(pieces, out)
        # The summary goes to stderr so that `-` output stays a clean data stream.
        self.stderr.write(f"exported the {what} of {project.slug} to {path}")

    @staticmethod
    def _write(pieces: Iterable[str], out: TextIO) -> None:
        for piece in pieces:
            out.write(piece)
