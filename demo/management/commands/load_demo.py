"""`load_demo`: the demo project `make run` opens on. Safe to run any number of times; only with DEBUG on."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from annotation.services import DomainError
from demo.generate import DATA_DIR
from demo.services import DEMO_PASSWORD, DEMO_SLUG, DEMO_USERNAME, demo_load


class Command(BaseCommand):
    help = (
        "Create the demo project (slug 'demo') and its expert (demo / demo), and build every stage of it: reviewed "
        "traces, judges and a promotion, a golden set with two suite runs, monitored production traffic with an "
        "alert, and an agents grader. Runs only with DEBUG on; a second run changes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data-dir", type=Path, default=DATA_DIR, help="where the demo files are (default: the committed ones)"
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
        started = time.perf_counter()
        try:
            report = demo_load(data_dir=options["data_dir"])
        except DomainError as exc:
            raise CommandError(str(exc)) from None
        traces, production = report.traces, report.production
        self.stdout.write(
            f"Demo project '{DEMO_SLUG}': {traces.created} traces created, {traces.duplicates} already present; "
            f"{production.created} production traces created, {production.duplicates} already present."
        )
        for line in report.built:
            self.stdout.write(f"  {line}")
        self.stdout.write(
            f"{'Built' if report.built else 'Nothing else to build'} in {time.perf_counter() - started:.1f} s. "
            f"Log in as {DEMO_USERNAME} / {DEMO_PASSWORD}."
        )
