"""Monitoring and judges that skip traces (a reference judge on production traffic without references): a skipped
trace is walked past, never recorded as a pass, a fail or an error of the series."""

from __future__ import annotations

import pytest

from annotation import ingest
from annotation.models import Trace
from judges.providers import Outcome, TraceInput
from monitoring.models import MonitorJudgment
from monitoring.services import drain_chunk
from tests.monitoring.helpers import cursor_of, jsonl, judge_check, production, promoted_judge, sampled

pytestmark = pytest.mark.django_db


def test_a_skipped_production_trace_is_walked_past_unrecorded(project):
    promotion = promoted_judge(project)
    ingest.import_stream(project=project, stream=jsonl(production(400)))

    def odd_ones_skipped(traces: list[TraceInput]) -> list[Outcome]:
        return [
            Outcome(skipped="no reference") if int(t.external_id.split("-")[1]) % 2 else Outcome(verdict="pass")
            for t in traces
        ]

    while drain_chunk(project=project, check=judge_check(promotion), score=odd_ones_skipped):
        pass
    wanted = sampled(project)
    even = {pk for pk, external_id in Trace.objects.filter(pk__in=wanted).values_list("pk", "external_id")
            if int(external_id.split("-")[1]) % 2 == 0}  # fmt: skip
    assert 0 < len(even) < len(wanted)
    recorded = MonitorJudgment.objects.filter(monitored_check__key=promotion.version_id)
    assert set(recorded.values_list("trace_id", flat=True)) == even
    assert not recorded.filter(verdict="").exists()  # no skip became an error
    assert cursor_of(promotion.version).last_trace_id >= max(wanted)  # and none is left to judge again
