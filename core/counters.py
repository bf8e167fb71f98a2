"""Event counters shared by every process (ingestion's accepted and rejected traces and spans) for `/metrics`.

A counter is a key in the cache (Redis when REDIS_URL is set): `counter_add` is one INCR, cheap enough for every
ingestion batch, and every web process and worker adds to the same number, so no process keeps counts of its own.
Best effort by design: while Redis is away an increment is dropped (core.cache fails open), and with the embedded
in-process cache (no REDIS_URL) each process counts only its own. Monotonic while Redis keeps its data, which is what
Prometheus' `rate()` expects (it handles resets).

Add to a counter with `counter_add(TRACES_ACCEPTED, project_id=..., n=...)`; a new counter is one more name in
COUNTERS (with its help text), and /metrics exports it as `evalstudio_<name>_total{project="slug"}`.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.cache import cache

TRACES_ACCEPTED = "traces_accepted"
TRACES_REJECTED = "traces_rejected"
SPANS_ACCEPTED = "spans_accepted"
SPANS_REJECTED = "spans_rejected"

# name → help text, in the order /metrics writes them.
COUNTERS: dict[str, str] = {
    TRACES_ACCEPTED: "Traces stored by ingestion (new or updated), any way in: API, files, uploads, OTLP",
    TRACES_REJECTED: "Traces (lines, records) ingestion rejected",
    SPANS_ACCEPTED: "OTLP spans accepted by the receiver",
    SPANS_REJECTED: "OTLP spans the receiver rejected (partial_success)",
}

# Counters outlive every cache timeout: Prometheus reads a drop as a reset.
_PREFIX = "evalstudio:counter"


def _key(name: str, project_id: int) -> str:
    return f"{_PREFIX}:{name}:{project_id}"


def counter_add(name: str, *, project_id: int, n: int = 1) -> None:
    """Add `n` to the project's counter `name` (one of COUNTERS). Never raises for an unreachable Redis."""
    if name not in COUNTERS:
        raise KeyError(f"no counter named {name!r}; add it to core.counters.COUNTERS")
    if n <= 0:
        return
    key = _key(name, project_id)
    # `add` creates the key without a timeout the first time; after that INCR is atomic across processes.
    if not cache.add(key, n, timeout=None):
        try:
            cache.incr(key, n)
        except ValueError:  # evicted between the add and the incr
            cache.add(key, n, timeout=None)


def counter_values(name: str, project_ids: Iterable[int]) -> dict[int, int]:
    """project id → the counter's value (0 when never counted), in one round trip."""
    ids = list(project_ids)
    found = cache.get_many([_key(name, pid) for pid in ids])
    return {pid: int(found.get(_key(name, pid)) or 0) for pid in ids}
