from __future__ import annotations

from django.apps import AppConfig


class AgentsConfig(AppConfig):
    name = "agents"
    verbose_name = "Agent trials"

    def ready(self) -> None:
        # Its worker runs are registered with core.runs, which queues them (run_enqueue) and resumes them.
        import agents.tasks  # noqa: F401
        from agents.monitored import PromotedGraders
        from judges.monitored import provider_register

        # A grader promoted into monitoring is a monitored check: monitoring drains and charts it without
        # importing agents.
        provider_register(PromotedGraders())
