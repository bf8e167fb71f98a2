from __future__ import annotations

from django.apps import AppConfig


class AnnotationConfig(AppConfig):
    name = "annotation"
    verbose_name = "Annotation"

    def ready(self) -> None:
        from django.contrib.auth.signals import user_logged_in

        # Its worker runs are registered with core.runs, which queues them (run_enqueue) and resumes them.
        import annotation.tasks  # noqa: F401
        from annotation.members import invitations_accept_on_login
        from annotation.otel.receiver import otlp_error
        from core.ratelimit import register_refusal_renderer

        # Pending invitations for the user's email become memberships on every login (single sign-on or password).
        user_logged_in.connect(invitations_accept_on_login, dispatch_uid="annotation.invitations_accept")
        # OTLP exporters are told they are over the rate limit in OTLP's own error form.
        for prefix in ("/v1/traces", "/api/public/otel/"):
            register_refusal_renderer(prefix, otlp_error)
