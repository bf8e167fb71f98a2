"""`import_golden --project SLUG --reason R [--comment TEXT] [--user USERNAME] PATH|-`: seed the golden set from a
file naming traces that are already in the project.

A line is either a JSON object with an `id` (a trace-format or golden export line; only the id is read) or a bare
trace id. Blank lines are skipped. All or nothing: when any line is bad (not JSON, no id, no such trace), each is
reported as `line N: reason`, nothing is written, and the exit status is 1. Otherwise the traces go into the set in
one new version (traces already in it with another reason or comment are re-filed).
"""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.models import Project, Trace
from annotation.services import DomainError
from annotation.trace_format import loads, record_id
from suites.golden import golden_add, golden_current_version
from suites.models import GoldenEntry

LOOKUP_CHUNK = 5000
MAX_REPORTED = 100


def read_ids(stream: BinaryIO) -> tuple[list[tuple[int, str]], list[str]]:
    """(line number, trace id) for every usable line, and `line N: reason` for every bad one."""
    ids: list[tuple[int, str]] = []
    errors: list[str] = []
    for number, raw in enumerate(stream, start=1):
        try:
            text = raw.decode("utf-8-sig" if number == 1 else "utf-8").strip()
        except UnicodeDecodeError:
            errors.append(f"line {number}: not UTF-8 text")
            continue
        if not text:
            continue
        if text.startswith("{"):
            try:
                obj = loads(text)
            except ValueError as exc:
                errors.append(f"line {number}: not valid JSON ({exc})")
                continue
            trace_id = record_id(obj)
            if trace_id is None or not trace_id.strip():
                errors.append(f"line {number}: the object has no id (a string or a number)")
                continue
            ids.append((number, trace_id))
        else:
            ids.append((number, text))
    return ids, errors


class Command(BaseCommand):
    help = (
        "Add the traces named in a JSONL or ids file (one per line) to the golden set, under one reason. "
        "All or nothing: any bad line is reported and nothing is written (exit status 1)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", metavar="PATH", help="a .jsonl file or a file of trace ids, or - for stdin")
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--reason", required=True, choices=GoldenEntry.Reason.values)
        parser.add_argument("--comment", default="", help="the same comment for every trace added")
        parser.add_argument("--user", metavar="USERNAME", help="recorded as who made the change")

    def handle(self, *args: Any, **options: Any) -> None:
        path: str = options["path"]
        project = Project.objects.filter(slug=options["project"]).first()
        if project is None:
            raise CommandError(f"no project {options['project']!r}")
        user = self._user(options["user"]) if options["user"] else None
        if path == "-":
            ids, errors = read_ids(sys.stdin.buffer)
        else:
            try:
                with open(path, "rb") as stream:
                    ids, errors = read_ids(stream)
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror or exc}") from None

        found: dict[str, Trace] = {}
        wanted = sorted({trace_id for _, trace_id in ids})
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            for trace in Trace.objects.filter(project=project, external_id__in=chunk).only(
                "id", "external_id", "project_id"
            ):
                found[trace.external_id] = trace
        for number, trace_id in ids:
            if trace_id not in found:
                errors.append(f"line {number}: no trace {trace_id!r} in {project.slug}")
        if errors:
            errors.sort(key=lambda message: int(message.split(":", 1)[0].removeprefix("line ")))
            for message in errors[:MAX_REPORTED]:
                self.stdout.write(message)
            if len(errors) > MAX_REPORTED:
                self.stdout.write(f"… and {len(errors) - MAX_REPORTED} more")
            self.stdout.write("nothing was written")
            raise CommandError(f"{len(errors)} rejected", returncode=1)
        if not found:
            raise CommandError(f"{path}: no trace ids in the file")

        before = golden_current_version(project=project)
        try:
            version = golden_add(
                project=project,
                traces=list(found.values()),
                reason=options["reason"],
                comment=options["comment"],
                user=user,
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        if version == before:
            self.stdout.write(f"{len(found)} traces, all already in the golden set as given: still v{version}")
        else:
            self.stdout.write(
                f"{len(found)} traces filed as {options['reason']}: golden set of {project.slug} now v{version}"
            )

    def _user(self, username: str) -> Any:
        user_model = get_user_model()
        try:
            return user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist:
            raise CommandError(f"--user: no user named {username!r}") from None
