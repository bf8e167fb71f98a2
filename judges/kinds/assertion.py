"""Assertion judges: deterministic checks on the output, the input or the tool calls (judges.providers.assertion),
one trace at a time."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from judges.kinds.base import JudgeKind, Scorer
from judges.models import Judge, JudgeVersion
from judges.providers import Outcome, TraceInput, assertion


class AssertionKind(JudgeKind):
    name = Judge.Kind.ASSERTION
    label = "assertion"

    def validate_config(self, config: object) -> dict[str, Any]:
        return assertion.validate_config(config)

    def scorer(self, version: JudgeVersion, *, as_of: datetime | None = None) -> Scorer:
        config = version.config

        def score(traces: list[TraceInput]) -> list[Outcome]:
            started = time.perf_counter()
            outcomes = [assertion.judge(config, trace) for trace in traces]
            # Microseconds a check: timed per batch, since a clock read per trace would cost as much as the check.
            each_ms = round(1000 * (time.perf_counter() - started) / max(1, len(traces)))
            return [replace(outcome, latency_ms=each_ms) for outcome in outcomes]

        return score
