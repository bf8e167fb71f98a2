"""`import_taxonomy --project SLUG [--notes] [--strict] [--format csv|json] [--actor USERNAME] PATH|-`: load a codebook
(failure modes with definitions) through the codebook services, so every change lands in the codebook's history;
with --notes, read a notes export back (notes on traces matched by external id, coded to their failure modes)."""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project
from annotation.services import DomainError
from annotation.taxonomy_format import CODEBOOK_FORMATS, codebook_format_for
from annotation.taxonomy_io import codebook_import, notes_import


class Command(BaseCommand):
    help = (
        "Import a codebook: a CSV with the columns name, definition (the failure-modes export is accepted too) or a "
        "JSON list of such objects. Creates missing failure modes and updates the definitions of existing ones "
        "(matched by name, ignoring case and spacing). Prints the counts and each bad row; exits with status 1 "
        "when any row was rejected. With --notes, the file is a notes export instead: each note goes on the trace "
        "with its trace_external_id, under its author (a project member), coded to its failure modes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH", help="a .csv or .json file, or - for standard input")
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--notes", action="store_true", help="the file is a notes export, not a codebook")
        parser.add_argument("--strict", action="store_true", help="write nothing at all when any row is bad")
        parser.add_argument("--format", choices=CODEBOOK_FORMATS, help="default: by extension (.csv), else json")
        parser.add_argument("--actor", metavar="USERNAME", help="the account the codebook history names")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["path"]
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        actor = self._actor(options["actor"]) if options["actor"] else None
        fmt = options["format"] or codebook_format_for(path if path != "-" else "")
        data = self._read(path)
        try:
            importer = notes_import if options["notes"] else codebook_import
            report = importer(project=project, data=data, fmt=fmt, actor=actor, strict=options["strict"])
        except DomainError as exc:
            raise CommandError(f"{path}: {exc}") from None

        self.stdout.write(report.summary())
        for error in report.errors:
            self.stdout.write(str(error))
        if report.errors:
            if report.rolled_back:
                self.stdout.write("nothing was written (--strict)")
            raise CommandError(f"{len(report.errors)} rejected", returncode=1)

    def _actor(self, username: str) -> AbstractBaseUser:
        user_model = get_user_model()
        try:
            return user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist:
            raise CommandError(f"no user {username!r}") from None

    def _read(self, path: str) -> bytes:
        if path == "-":
            return sys.stdin.buffer.read()
        try:
            with open(path, "rb") as stream:
                return stream.read()
        except OSError as exc:
            raise CommandError(f"{path}: {exc.strerror or exc}") from None
