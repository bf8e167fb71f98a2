"""`create_api_token --project SLUG --name NAME [--expires-in-days N]`: prints a new bearer token once; only its hash
is stored."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from annotation.models import Project
from annotation.services import API_TOKEN_MAX_DAYS, DomainError, api_token_create


class Command(BaseCommand):
    help = "Create a project API token and print it once (only its hash is stored)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--name", required=True, help="what the token is for, e.g. ci or production")
        parser.add_argument(
            "--expires-in-days",
            type=int,
            metavar="N",
            help=f"the token stops working N days from now (1 to {API_TOKEN_MAX_DAYS}); default: never",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        days = options["expires_in_days"]
        if days is not None and not 1 <= days <= API_TOKEN_MAX_DAYS:
            raise CommandError(f"--expires-in-days must be between 1 and {API_TOKEN_MAX_DAYS}, got {days}")
        expires_at = None if days is None else timezone.now() + timedelta(days=days)
        try:
            token, raw = api_token_create(project=project, name=options["name"], expires_at=expires_at)
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        # The token alone on stdout, so scripts can capture it; the reminder goes to stderr.
        self.stdout.write(raw)
        until = "" if expires_at is None else f", valid until {expires_at:%Y-%m-%d %H:%M} UTC"
        self.stderr.write(f"Token {token.name!r} for project {project.slug!r}{until}. It is shown only this once.")
