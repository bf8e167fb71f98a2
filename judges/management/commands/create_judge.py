"""`create_judge --project SLUG --criterion NAME --name NAME --kind KIND [--config FILE.json]`: a judge and its
first version (DESIGN.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Criterion
from annotation.services import DomainError
from core.json_input import json_loads
from judges import kinds
from judges.management.commands._common import project_by_slug
from judges.services import judge_create


class Command(BaseCommand):
    help = "Create a judge for one criterion, with its first version."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--criterion", required=True, metavar="NAME")
        parser.add_argument("--name", required=True)
        parser.add_argument("--kind", required=True, choices=[kind.name for kind in kinds.all_kinds()])
        parser.add_argument("--config", metavar="FILE.json", help="the judge's settings (see DESIGN.md)")

    def handle(self, *args: Any, **options: Any) -> None:
        project = project_by_slug(options["project"])
        criterion = Criterion.objects.filter(project=project, name=options["criterion"]).first()
        if criterion is None:
            names = ", ".join(project.criteria.values_list("name", flat=True)) or "none yet"
            raise CommandError(
                f"--criterion: project {project.slug!r} has no criterion {options['criterion']!r} (criteria: {names})"
            )
        config: object = {}
        if options["config"]:
            path = options["config"]
            try:
                with open(path, encoding="utf-8") as file:
                    config = json_loads(file.read())
            except OSError as exc:
                raise CommandError(f"--config {path}: {exc.strerror or exc}") from None
            except ValueError as exc:
                raise CommandError(f"--config {path}: not valid JSON: {exc}") from None
        try:
            judge = judge_create(
                project=project, criterion=criterion, name=options["name"], kind=options["kind"], config=config
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(f"created {judge.kind} judge {judge.name!r} for {criterion.name!r}, version 1")
