"""Which production traces monitoring judges. Django-free: the ingestion parser process imports it.

A trace is sampled when its source is "production" and a hash of its external id falls under the project's rate.
The hash is keyed differently from the review queue's shuffle key, so the monitoring sample is independent of the
"random" queue order; it is deterministic, so re-sending a trace never changes whether it is sampled (at a given
rate), and a higher rate samples a superset of a lower one.
"""

from __future__ import annotations

import hashlib

PRODUCTION = "production"
_SCALE = float(1 << 64)
# Keyed once; copying the keyed state is about twice as fast as building a new hash per trace (ingestion calls
# this for every production trace).
_HASH = hashlib.blake2b(digest_size=8, person=b"es-monitor")


def sample_point(external_id: str) -> float:
    """A stable pseudo-random number in [0, 1) for the trace id."""
    state = _HASH.copy()
    state.update(external_id.encode("utf-8", "surrogatepass"))
    return int.from_bytes(state.digest(), "big") / _SCALE


def is_sampled(*, source: str, external_id: str, rate: float) -> bool:
    """Whether monitoring judges this trace; only production traces are ever sampled."""
    return rate > 0 and source == PRODUCTION and sample_point(external_id) < rate
