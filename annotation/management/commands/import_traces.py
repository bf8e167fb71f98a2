"""`import_traces --project SLUG [--create-project] [--expert USERNAME] [--on-conflict skip|update] [--strict]
PATH|-`: the command-line door into the one ingestion path (annotation.ingest)."""

from __future__ import annotations

import sys
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.ingest import FORMATS, ON_CONFLICT_CHOICES, IngestError, import_path, import_stream
from annotation.models import Project
from annotation.services import DomainError, project_create, project_set_expert
from annotation.trace_format import format_for_path


class Command(BaseCommand):
    help = (
        "Import traces from a JSONL, CSV or Parquet file (or - for standard input), or from files other tools wrote: "
        "--format otlp-json (OpenTelemetry Collector file exporter), phoenix (Phoenix span dataframe as Parquet or "
        "JSONL), langfuse (Langfuse traces with observations). Prints the created, duplicate and "
        "rejected counts and each rejected line; exits with status 1 when any line was rejected."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "path", metavar="PATH", help="a .jsonl, .csv or .parquet file (optionally .gz), or - for stdin"
        )
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--create-project", action="store_true", help="create the project when it is missing")
        parser.add_argument(
            "--expert", metavar="USERNAME", help="the project's expert (an existing account) when it has none yet"
        )
        parser.add_argument("--on-conflict", choices=ON_CONFLICT_CHOICES, default="skip")
        parser.add_argument("--strict", action="store_true", help="write nothing at all when any line is bad")
        parser.add_argument("--format", choices=FORMATS, help="default: by extension (.csv, .parquet), else jsonl")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["path"]
        if path != "-":
            try:
                open(path, "rb").close()  # before creating a project for a file that cannot be read
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror or exc}") from None
        project = self._project(options["project"], create=options["create_project"])
        if options["expert"]:
            self._set_expert(project, options["expert"])
        fmt = options["format"] or ("jsonl" if path == "-" else format_for_path(path))
        common = {"project": project, "fmt": fmt, "on_conflict": options["on_conflict"], "strict": options["strict"]}
        try:
            if path == "-":
                report = import_stream(stream=sys.stdin.buffer, **common)
            else:
                # A path lets a big file be parsed in a second process while this one writes.
                report = import_path(path=path, **common)
        except IngestError as exc:
            raise CommandError(f"{path}: {exc}") from None

        self.stdout.write(report.summary())
        for rejection in report.rejected:
            self.stdout.write(str(rejection))
        if report.rejected:
            if report.rolled_back:
                self.stdout.write("nothing was written (--strict)")
            raise CommandError(f"{len(report.rejected)} rejected", returncode=1)

    def _project(self, slug: str, *, create: bool) -> Project:
        project = Project.objects.filter(slug=slug).select_related("expert").first()
        if project is not None:
            return project
        if not create:
            raise CommandError(f"no project {slug!r}; pass --create-project to create it")
        try:
            return project_create(slug=slug)
        except DomainError as exc:
            raise CommandError(str(exc)) from None

    def _set_expert(self, project: Project, username: str) -> None:
        user_model = get_user_model()
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist:
            raise CommandError(f"--expert: no user named {username!r}") from None
        if project.expert_id is None:
            project_set_expert(project=project, user=user)
        elif project.expert_id != user.pk:
            raise CommandError(
                f"--expert: project {project.slug!r} already has an expert ({project.expert}); "
                "labels in the file would be theirs, not " + repr(username)
            )
