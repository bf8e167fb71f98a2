"""What the judge commands share: the arguments naming one judge version and their lookups (which fail with a
CommandError naming what is missing), the options of a command that runs on the worker, and waiting for its run."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from annotation.models import Project
from core.runs import WorkerRun
from judges.models import Judge, JudgeVersion


def project_by_slug(slug: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise CommandError(f"--project: no project {slug!r}")
    return project


def judge_by_name(project: Project, name: str) -> Judge:
    judge = Judge.objects.filter(project=project, name=name).select_related("criterion").first()
    if judge is None:
        names = ", ".join(Judge.objects.filter(project=project).values_list("name", flat=True)) or "none yet"
        raise CommandError(f"--judge: project {project.slug!r} has no judge {name!r} (judges: {names})")
    return judge


def version_by_number(judge: Judge, number: int | None) -> JudgeVersion:
    """The judge's version `number`, or its latest when None."""
    versions = judge.versions.all()
    version = versions.filter(number=number).first() if number else versions.last()
    if version is None:
        numbers = ", ".join(str(n) for n in versions.values_list("number", flat=True))
        raise CommandError(f"--version: judge {judge.name!r} has no version {number} (versions: {numbers})")
    return version


class JudgeVersionCommand(BaseCommand):
    """A command about one judge version: `--project SLUG --judge NAME --version N` (the latest when not required
    and not given). Subclasses add their own arguments after these."""

    version_required = False

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # DESIGN.md's `--version N` picks a judge version; it replaces Django's --version (the Django release).
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--judge", required=True, metavar="NAME")
        if self.version_required:
            parser.add_argument("--version", required=True, type=int, metavar="N")
        else:
            parser.add_argument("--version", type=int, metavar="N", help="default: the latest")

    def judge_version(self, options: dict[str, Any]) -> JudgeVersion:
        judge = judge_by_name(project_by_slug(options["project"]), options["judge"])
        return version_by_number(judge, options["version"])


def add_run_arguments(parser: CommandParser) -> None:
    """The options of a command whose run goes to the worker."""
    parser.add_argument("--json", action="store_true", help="print the report as one JSON object")
    parser.add_argument("--inline", action="store_true", help="run in this process instead of the worker")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait for the worker")


# A run no worker has claimed after this long runs in the command's own process.
WORKER_GRACE_S = 10
R = TypeVar("R", bound=WorkerRun)


def wait_for_run(
    run: R, *, timeout: float, execute: Callable[[R], R], name: str, taking_over: str, stderr: OutputWrapper
) -> R:
    """Wait for a queued worker run (`name` says which, e.g. "run 12") to finish; when no worker has claimed it
    after WORKER_GRACE_S, say so (`taking_over`: what happens instead) and `execute` it here. The claim is
    conditional, so a worker arriving then finds nothing to do (and the reverse). CommandError after `timeout`."""
    started = time.monotonic()
    taken_over = False
    while time.monotonic() - started < timeout:
        run.refresh_from_db()
        if run.is_finished:
            return run
        if not taken_over and run.status == run.Status.QUEUED and time.monotonic() - started > WORKER_GRACE_S:
            stderr.write(f"no worker took {name} within {WORKER_GRACE_S} s; {taking_over}")
            taken_over = True
            run = execute(run)
            continue
        time.sleep(0.5)
    raise CommandError(f"{name} did not finish within {timeout:.0f} s")
