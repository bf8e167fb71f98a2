"""The house's plumbing, knowing no domain (it imports only Django, Celery and the standard library): the worker-run
lifecycle, SVG chart primitives, validation messages."""
