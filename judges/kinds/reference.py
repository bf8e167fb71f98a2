"""Reference judges: the output compared with the trace's known-good answer (judges.providers.reference), one
trace at a time. Local and free; a trace without a reference is skipped, never passed."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from typing import Any

from judges.kinds.base import JudgeKind, Scorer
from judges.models import Judge, JudgeVersion
from judges.providers import Outcome, TraceInput, reference


class ReferenceKind(JudgeKind):
    name = Judge.Kind.REFERENCE
    label = "reference"

    def validate_config(self, config: object) -> dict[str, Any]:
        return reference.validate_config(config)

    def scorer(self, version: JudgeVersion, *, as_of: datetime | None = None) -> Scorer:
        config = version.config

        def score(traces: list[TraceInput]) -> list[Outcome]:
            started = time.perf_counter()
            outcomes = [reference.judge(config, trace) for trace in traces]
            # Timed per batch, like the assertion kind: a clock read per trace would cost as much as the check.
            each_ms = round(1000 * (time.perf_counter() - started) / max(1, len(traces)))
            return [replace(outcome, latency_ms=each_ms) for outcome in outcomes]

        return score
