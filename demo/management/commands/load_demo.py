"""`load_demo`: the demo project `make run` opens on. Safe to run any number of times; only with DEBUG on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from annotation.ingest import IngestError, import_stream
from annotation.models import Criterion, Project
from annotation.services import DomainError, project_create, project_set_expert
from demo.generate import CRITERIA, DEFAULT_OUT, PROJECT_DESCRIPTION, PROJECT_NAME

DEMO_SLUG = "demo"
DEMO_USERNAME = "demo"
# A well-known password is the point of a demo login, and the reason this command refuses to run without DEBUG.
DEMO_PASSWORD = "demo"


class Command(BaseCommand):
    help = (
        "Create the demo project (slug 'demo'), its expert (demo / demo) and criteria, and import the demo traces. "
        "Runs only with DEBUG on; a second run changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--path", type=Path, default=DEFAULT_OUT, help="the demo JSONL (default: the committed demo file)"
        )
        parser.add_argument(
            "--if-debug",
            action="store_true",
            help="with DEBUG off, say so and exit 0 instead of failing (what `make run` uses)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            if options["if_debug"]:
                self.stdout.write("DEBUG is off: the demo project is not loaded.")
                return
            raise CommandError(
                "load_demo creates a user 'demo' with the password 'demo', so it only runs with DEBUG on "
                "(set DEBUG=1); refusing to run with DEBUG off."
            )
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"{path}: demo file not found; write it with `python -m demo.generate`")

        project = _demo_setup()
        try:
            with path.open("rb") as stream:
                report = import_stream(project=project, stream=stream, fmt="jsonl", on_conflict="skip")
        except IngestError as exc:
            raise CommandError(f"{path}: {exc}") from None
        if report.rejected:
            # The demo file is ours: a rejected line is a bug in the generator or the ingestion, not user input.
            details = "; ".join(str(rejection) for rejection in report.rejected[:5])
            raise CommandError(f"{path}: {len(report.rejected)} demo traces rejected ({details})")
        judges = _demo_judges(project)
        from demo.grader import demo_outcome_grader  # agents builds on annotation, not the other way round

        demo_outcome_grader(project)
        self.stdout.write(
            f"Demo project '{DEMO_SLUG}': {report.created} traces created, {report.duplicates} already present"
            f"{f', {judges} demo judges run on dev' if judges else ''}. Log in as {DEMO_USERNAME} / {DEMO_PASSWORD}."
        )


@transaction.atomic
def _demo_setup() -> Project:
    """The demo user, project and criteria, each created only when missing; existing rows are left as they are."""
    user = _demo_user()
    project = Project.objects.filter(slug=DEMO_SLUG).first()
    if project is None:
        project = project_create(slug=DEMO_SLUG, name=PROJECT_NAME, expert=user, description=PROJECT_DESCRIPTION)
    elif project.expert_id is None:
        # Labels in the demo file are imported as the expert's; without one they would all be rejected.
        project_set_expert(project=project, user=user)
    for position, (name, definition) in enumerate(CRITERIA):
        Criterion.objects.get_or_create(
            project=project, name=name, defaults={"definition": definition, "position": position}
        )
    return project


# Two cheap judges for the judges page to show, each measured on its criterion's dev split when first created.
DEMO_JUDGES = [
    ("grounded", "grounded-tfidf", "classifier", {}),
    (
        "resolves_request",
        "no-promises-or-agent-codes",
        "assertion",
        {"check": "regex", "pattern": r"(?i)\bguarantee|money back|\bRET\d{2,}", "must_match": False},
    ),
]


def _demo_judges(project: Project) -> int:
    """Create and run the demo judges that are missing; returns how many were created."""
    # The judges app builds on this one; imported here so that annotation does not depend on it at import time.
    from judges.models import Judge
    from judges.services import judge_create, judge_run_execute, judge_run_start

    created = 0
    for criterion_name, name, kind, config in DEMO_JUDGES:
        criterion = Criterion.objects.filter(project=project, name=criterion_name).first()
        if criterion is None or Judge.objects.filter(project=project, name=name).exists():
            continue
        try:
            judge = judge_create(project=project, criterion=criterion, name=name, kind=kind, config=config)
        except DomainError:
            continue  # e.g. a train split without both classes: the demo simply has one judge fewer
        judge_run_execute(run=judge_run_start(version=judge.latest_version(), split="dev"))
        created += 1
    return created


def _demo_user() -> AbstractBaseUser:
    user_model = get_user_model()
    user = user_model.objects.filter(**{user_model.USERNAME_FIELD: DEMO_USERNAME}).first()
    if user is None:
        user = user_model.objects.create_user(**{user_model.USERNAME_FIELD: DEMO_USERNAME}, password=DEMO_PASSWORD)
    return user
