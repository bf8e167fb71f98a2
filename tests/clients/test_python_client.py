"""The Python client in clients/python (imported from its source folder) against a live server: every page of the
traces, a run's judgments, a monitoring series, each as a DataFrame, and the server's detail in its errors."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from django.core.cache import cache
from django.utils import timezone

from annotation.services import api_token_create
from judges.models import JudgeRun
from monitoring.models import MonitorJudgment
from tests.factories import make_label, make_trace
from tests.monitoring.helpers import check_row, promoted_judge

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))

from evalstudio_client import Client, EvalStudioError  # noqa: E402


@pytest.fixture
def seeded(transactional_db, project):
    cache.clear()
    # 60 labels (20 fails): the dev split, drawn by hash, holds both classes whatever the criterion's id (12 did not).
    promotion = promoted_judge(project, labelled=60)
    criterion = promotion.criterion
    now = timezone.now()
    MonitorJudgment.objects.bulk_create(
        MonitorJudgment(
            project=project,
            monitored_check=check_row(promotion),
            trace=make_trace(project=project, external_id=f"prod-{i}", source="production"),
            occurred_at=now - timedelta(minutes=5),  # in the hour before now during an hour's first 5 minutes
            verdict="fail" if i % 4 == 0 else "pass",
        )  # fmt: skip
        for i in range(8)
    )
    make_label(trace=make_trace(project=project, external_id="extra"), criterion=criterion, verdict="fail",
               critique="Apologises twice")  # fmt: skip
    run = JudgeRun.objects.filter(version=promotion.version, split="test").get()
    return {
        "token": api_token_create(project=project, name="notebook")[1],
        "run": run,
        "criterion": criterion,
        "judged_at": now - timedelta(minutes=5),
    }


def test_the_client_reads_every_page_and_turns_each_result_into_a_dataframe(live_server, seeded):
    from annotation.models import Trace

    with Client(live_server.url, seeded["token"]) as client:
        traces = client.traces("acme", page_size=7)
        frame = traces.to_pandas()
        assert len(frame) == Trace.objects.filter(project__slug="acme").count() > 100  # many pages of 7
        assert frame["id"].is_unique
        extra = frame.set_index("id").loc["extra"]
        assert (extra["label.no_apology"], extra["critique.no_apology"]) == ("fail", "Apologises twice")
        production = client.traces("acme", source="production").to_pandas()
        assert sorted(production["id"]) == sorted(f"prod-{i}" for i in range(8))

        judgments = client.judgments(seeded["run"].pk, page_size=10).to_pandas()
        assert len(judgments) == seeded["run"].judgments.count() > 40  # several pages of 10
        assert judgments["trace"].is_unique
        assert set(judgments.columns) >= {"trace", "verdict", "reasoning", "expert_verdict", "agrees"}
        assert judgments["agrees"].all()  # the assertion judge agrees with the expert on every test trace

        series = client.monitoring_series("acme", criterion="no_apology", bucket="hour", window="24h")
        assert series.judge["version_id"] == seeded["run"].version_id
        table = series.to_pandas()
        assert len(table) == 24 and str(table.index.tz) == "UTC"
        bucket = table.loc[pd.Timestamp(seeded["judged_at"]).floor("h")]  # the hour the verdicts fell in
        assert (bucket["judged"], bucket["passed"]) == (8, 6)
        assert bucket["observed_low"] < 0.75 < bucket["observed_high"]


def test_the_client_raises_with_the_servers_detail(live_server, seeded):
    with Client(live_server.url, seeded["token"]) as client:
        with pytest.raises(EvalStudioError, match="Query parameter 'window' must be one of 24h, 7d, 30d") as caught:
            client.monitoring_series("acme", criterion="no_apology", window="1y")
        assert caught.value.status == 400
        with pytest.raises(EvalStudioError, match="^404 .*: No such project$"):
            client.traces("nope").all()
    with Client(live_server.url, "es_wrong") as client, pytest.raises(EvalStudioError) as caught:
        client.judgments(seeded["run"].pk).all()
    assert (caught.value.status, caught.value.detail) == (401, "Invalid token: no such API token")
