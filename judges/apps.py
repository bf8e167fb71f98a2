from __future__ import annotations

from django.apps import AppConfig


class JudgesConfig(AppConfig):
    name = "judges"
    verbose_name = "Judges"

    def ready(self) -> None:
        # Its worker runs are registered with core.runs, which queues them (run_enqueue) and resumes them.
        import judges.tasks  # noqa: F401
