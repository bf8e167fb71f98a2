from __future__ import annotations

from django.apps import AppConfig


class JudgesConfig(AppConfig):
    name = "judges"
    verbose_name = "Judges"

    def ready(self) -> None:
        import judges.kinds  # noqa: F401 - registers the built-in kinds, the choices of Judge.kind

        # Its worker runs are registered with core.runs, which queues them (run_enqueue) and resumes them.
        import judges.tasks  # noqa: F401
