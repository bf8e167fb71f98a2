"""External judges: verdicts made elsewhere and imported (judges.services.judgments_import). A run on a split
measures the latest import's verdicts for the split's traces; it cannot judge anything new."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.utils import timezone

from annotation.services import DomainError
from judges.kinds.base import JudgeKind, Scorer
from judges.models import Judge, JudgeRun, JudgeVersion, Judgment
from judges.providers import ConfigError, Outcome, TraceInput
from judges.selectors import labelled_trace_ids


class ExternalKind(JudgeKind):
    name = Judge.Kind.EXTERNAL
    label = "external"
    local = False  # someone else paid for the verdicts, and what they cost is not known here
    cannot_judge_new_outputs = "An external judge's verdicts are imported, so it cannot judge new outputs."

    def validate_config(self, config: object) -> dict[str, Any]:
        if config not in (None, {}):
            raise ConfigError("an external judge takes no settings; its verdicts are imported")
        return {}

    def run_trace_ids(self, *, version: JudgeVersion, split: str, as_of: datetime) -> list[int]:
        """The split's traces that the latest import judged: a trace the other tool never judged is not the run's
        to wait for."""
        source = latest_import(version.judge, as_of=as_of)
        if source is None:
            raise DomainError(f"judge {version.judge.name!r} has no imported judgments yet; import them first")
        wanted = labelled_trace_ids(criterion=version.judge.criterion, split=split)
        return list(
            Judgment.objects.filter(run=source, trace_id__in=list(wanted))
            .order_by("trace_id")
            .values_list("trace_id", flat=True)
        )

    def chunk_size(self, version: JudgeVersion) -> int:
        return 5000  # a copy: one read and one insert a chunk

    def scorer(self, version: JudgeVersion, *, as_of: datetime | None = None) -> Scorer:
        source = latest_import(version.judge, as_of=as_of or timezone.now())

        def score(traces: list[TraceInput]) -> list[Outcome]:
            imported = {}
            if source is not None:
                imported = {
                    external_id: Outcome(verdict=verdict, reasoning=reasoning, raw_output=raw_output, error=error)
                    for external_id, verdict, reasoning, raw_output, error in Judgment.objects.filter(
                        run=source, trace__external_id__in=[t.external_id for t in traces]
                    ).values_list("trace__external_id", "verdict", "reasoning", "raw_output", "error")
                }
            missing = Outcome(error="no imported verdict for this trace")
            return [imported.get(trace.external_id, missing) for trace in traces]

        return score


def latest_import(judge: Judge, *, as_of: datetime) -> JudgeRun | None:
    """The judge's latest import finished by `as_of`."""
    return (
        JudgeRun.objects.filter(version__judge=judge, status=JudgeRun.Status.DONE, finished_at__lte=as_of)
        .exclude(imported_from="")
        .order_by("-finished_at", "-id")
        .first()
    )
