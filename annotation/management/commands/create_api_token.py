"""`create_api_token --project SLUG --name NAME`: prints a new bearer token once; only its hash is stored."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project
from annotation.services import DomainError, api_token_create


class Command(BaseCommand):
    help = "Create a project API token and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--name", required=True, help="what the token is for, e.g. ci or production")

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        try:
            token, raw = api_token_create(project=project, name=options["name"])
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        # The token alone on stdout, so scripts can capture it; the reminder goes to stderr.
        self.stdout.write(raw)
        self.stderr.write(f"Token {token.name!r} for project {project.slug!r}. It is shown only this once.")
