"""`export_finetune --project SLUG --criterion NAME [--split train] [PATH | --out FILE]`: the expert's labelled train
traces of one criterion, with their critiques, as chat-format JSONL for fine-tuning (judges/finetune.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser, OutputWrapper

from annotation.models import Criterion
from annotation.services import DomainError
from judges.finetune import EXPORTABLE_SPLIT, FinetuneExport, finetune_export
from judges.management.commands._common import project_by_slug


class _Lines:
    """The command's stdout as a plain text stream: the export writes whole lines, newline included."""

    def __init__(self, wrapper: OutputWrapper) -> None:
        self.wrapper = wrapper

    def write(self, text: str) -> int:
        self.wrapper.write(text, ending="")
        return len(text)


class Command(BaseCommand):
    help = (
        "Write the expert's labelled train traces of a criterion as chat-format JSONL (system: the judge's rubric and "
        "the criterion; user: the trace; assistant: the critique, then the verdict). Dev and test are held out and "
        "refused. Without PATH or --out the lines go to standard output; the counts go to standard error."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", nargs="?", metavar="PATH", help="the JSONL file to write (default: stdout)")
        parser.add_argument("--out", metavar="FILE", help="the same as PATH")
        parser.add_argument("--project", required=True, metavar="SLUG")
        parser.add_argument("--criterion", required=True, metavar="NAME")
        parser.add_argument("--split", default=EXPORTABLE_SPLIT, metavar="train", help="only train is exported")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["path"] and options["out"] and options["path"] != options["out"]:
            raise CommandError(f"give PATH or --out, not both ({options['path']!r} and {options['out']!r})")
        target = options["path"] or options["out"]
        project = project_by_slug(options["project"])
        criterion = (
            Criterion.objects.filter(project=project, name=options["criterion"]).select_related("project").first()
        )
        if criterion is None:
            names = ", ".join(project.criteria.values_list("name", flat=True)) or "none yet"
            raise CommandError(
                f"--criterion: project {project.slug!r} has no criterion {options['criterion']!r} (criteria: {names})"
            )
        try:
            export = self._write(criterion, options["split"], target)
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        except OSError as exc:
            raise CommandError(f"{target}: {exc.strerror or exc}") from None
        self.stderr.write(
            f"wrote {export.written} examples of {criterion.name!r} (train split) to {target or 'stdout'}; skipped "
            f"{export.without_critique} train labels without a critique; {export.held_out} dev/test labels held out"
        )
        if not export.written:
            raise CommandError("nothing to export: no train label of this criterion has a critique", returncode=1)

    def _write(self, criterion: Criterion, split: str, target: str | None) -> FinetuneExport:
        if target is None:
            return finetune_export(criterion=criterion, split=split, out=_Lines(self.stdout))
        # Written beside the target and renamed at the end: a failure never leaves half a file under its name.
        path = Path(target)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent or ".")
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as out:
                export = finetune_export(criterion=criterion, split=split, out=out)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return export
