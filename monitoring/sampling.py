"""Which production traces monitoring judges. Django-free.

A trace is sampled when its source is "production" and a hash of its external id falls under the sampling rate in
force when it was stored. Nothing about the sample is stored: whether a trace is sampled follows from its id, its
source and the project's rate history, so ingestion writes nothing for monitoring. The hash is keyed differently
from the review queue's shuffle key, so the monitoring sample is independent of the "random" queue order; it is
deterministic, so re-sending a trace never changes whether it is sampled, and a higher rate samples a superset of a
lower one.

A series whose check runs here without paying anyone (an assertion or classifier judge, an outcome grader) can be
set to judge all production traffic instead, from a point in the trace stream on (`with_all_traffic`): a rate of
1, which every production trace is under.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence

PRODUCTION = "production"
DEFAULT_SAMPLING_RATE = 0.15
_SCALE = float(1 << 64)
# Keyed once; copying the keyed state is about twice as fast as building a new hash per trace.
_HASH = hashlib.blake2b(digest_size=8, person=b"es-monitor")


def sample_point(external_id: str) -> float:
    """A stable pseudo-random number in [0, 1) for the trace id."""
    state = _HASH.copy()
    state.update(external_id.encode("utf-8", "surrogatepass"))
    return int.from_bytes(state.digest(), "big") / _SCALE


def is_sampled(*, source: str, external_id: str, rate: float) -> bool:
    """Whether monitoring judges this trace; only production traces are ever sampled. At a rate of 1 every
    production trace is (sample points are below 1), without hashing its id."""
    if source != PRODUCTION or rate <= 0:
        return False
    return rate >= 1 or sample_point(external_id) < rate


class RateHistory:
    """The rate in force for each trace: `changes` are (after_trace_id, rate) in order; a trace whose id is larger
    than a change's `after_trace_id` (and no later one's) is sampled at that change's rate."""

    def __init__(self, changes: Sequence[tuple[int, float]], default: float = DEFAULT_SAMPLING_RATE) -> None:
        self.after = [after for after, _ in changes]
        self.rates = [rate for _, rate in changes]
        self.default = default

    def rate_for(self, trace_id: int) -> float:
        index = bisect.bisect_left(self.after, trace_id) - 1
        return self.rates[index] if index >= 0 else self.default

    @property
    def current(self) -> float:
        return self.rates[-1] if self.rates else self.default


def with_all_traffic(rates: RateHistory, changes: Sequence[tuple[int, bool]]) -> RateHistory:
    """The rate a check judges each trace at when its series judges all traffic over parts of the trace stream:
    `changes` are (after_trace_id, all_traffic) in order, as in RateHistory; where all traffic is in force the rate
    is 1 (every production trace), elsewhere the project's `rates`."""
    if not changes:
        return rates
    switch = RateHistory([(after, 1.0 if on else 0.0) for after, on in changes], default=0.0)
    # Each change of either history starts a span; ids are integers, so `after + 1` is the span's first trace.
    points = sorted({*rates.after, *switch.after})
    merged = [(after, 1.0 if switch.rate_for(after + 1) == 1.0 else rates.rate_for(after + 1)) for after in points]
    return RateHistory(merged, default=rates.default)
