from __future__ import annotations

from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "Annotation"

    def ready(self) -> None:
        # Its worker runs are registered with core.runs, which queues them (run_enqueue) and resumes them.
        import annotation.tasks  # noqa: F401
