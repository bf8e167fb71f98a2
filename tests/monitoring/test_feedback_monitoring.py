"""Users' feedback beside the judges in monitoring: the negative-feedback rate per bucket with its exact interval,
and the 2×2 agreement of feedback with the promoted judge."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from annotation import ingest
from judges.stats import proportion_interval
from monitoring.feedback import agreement_table, feedback_agreement, negative_feedback_series
from monitoring.models import MonitoredCheck
from monitoring.series import truncate
from monitoring.services import monitoring_drain, sampling_rate_set
from tests.monitoring.helpers import jsonl, production, promoted_judge, series_of


def test_agreement_table_counts_each_cell_and_the_rate():
    table = agreement_table([("pass", False)] * 5 + [("pass", True)] * 2 + [("fail", True)] * 3 + [("fail", False)])
    assert (table.judge_pass_positive, table.judge_pass_negative) == (5, 2)
    assert (table.judge_fail_positive, table.judge_fail_negative) == (1, 3)
    assert (table.n, table.agreeing, table.rate) == (11, 8, 8 / 11)
    assert table.interval == proportion_interval(8, 11)
    assert agreement_table([]).rate is None and agreement_table([]).interval is None


@pytest.mark.django_db
class TestWithTraffic:
    @pytest.fixture
    def monitored(self, project):
        sampling_rate_set(project=project, rate=1.0)
        return promoted_judge(project)

    def traffic(self, project, *, hours_ago: int, prefix: str, now: datetime | None = None) -> None:
        """20 production traces: every 4th fails the judge. Feedback: traces 0–3 thumbs down, 4–9 thumbs up,
        10 a 1-of-5 rating, 11 a comment only, the rest none."""
        moment = truncate(now or timezone.now(), "hour") - timedelta(hours=hours_ago) + timedelta(minutes=3)
        items = production(20, prefix=prefix, fail_every=4, timestamp=moment.isoformat())
        for index, item in enumerate(items):
            if index < 4:
                item["feedback"] = [{"kind": "thumbs", "value": "down"}]
            elif index < 10:
                item["feedback"] = [{"kind": "thumbs", "value": "up"}]
            elif index == 10:
                item["feedback"] = [{"kind": "rating", "value": 1}, {"kind": "thumbs", "value": "up"}]
            elif index == 11:
                item["feedback"] = [{"kind": "comment", "value": "hm"}]
        ingest.import_stream(project=project, stream=jsonl(items))
        monitoring_drain(project=project)

    def test_negative_rate_per_bucket_counts_traces_with_polar_feedback(self, project, monitored):
        # One moment for the traffic, the series and the expected bucket: an hour turning between them moves one.
        now = timezone.now()
        self.traffic(project, hours_ago=2, prefix="a", now=now)
        buckets = negative_feedback_series(project=project, bucket="hour", window=timedelta(hours=24), now=now)
        assert len(buckets) == 24
        (filled,) = [b for b in buckets if b.polar]
        # 11 traces with a thumbs or a rating; 5 negative (4 thumbs down, one low rating beside a thumbs up).
        assert (filled.polar, filled.negative) == (11, 5)
        assert filled.rate == 5 / 11
        assert (filled.low, filled.high) == proportion_interval(5, 11)
        assert filled.start == truncate(now, "hour") - timedelta(hours=2)

    def test_agreement_pairs_the_judges_verdicts_with_feedback(self, project, monitored):
        self.traffic(project, hours_ago=2, prefix="a")
        check_ids = list(MonitoredCheck.objects.filter(series=series_of(monitored)).values_list("pk", flat=True))
        table = feedback_agreement(project=project, check_ids=check_ids)
        # Judge fails traces 0, 4, 8 (every 4th); negative feedback on 0–3 and 10.
        assert (table.judge_fail_negative, table.judge_fail_positive) == (1, 2)  # 0 | 4, 8
        assert (table.judge_pass_negative, table.judge_pass_positive) == (4, 4)  # 1, 2, 3, 10 | 5, 6, 7, 9
        assert table.n == 11

    def test_the_criterion_page_shows_the_feedback_series_and_the_agreement(self, expert_client, project, monitored):
        self.traffic(project, hours_ago=1, prefix="a")
        page = expert_client.get(f"/projects/acme/monitoring/{monitored.criterion_id}/?bucket=hour&window=24h")
        text = page.content.decode()
        assert page.status_code == 200
        assert 'id="feedback-table"' in text and 'id="agreement-table"' in text
        low, high = proportion_interval(5, 11)
        assert f'<strong>45%</strong> <span class="ci">({low:.0%}–{high:.0%})</span>' in text
        assert "Agreement on 11 traces with both" in text

    def test_without_feedback_the_page_says_so(self, expert_client, project, monitored):
        page = expert_client.get(f"/projects/acme/monitoring/{monitored.criterion_id}/").content.decode()
        assert "No users' feedback on production traces in this window." in page

    def test_the_overview_gives_the_weeks_negative_feedback_rate(self, expert_client, project, monitored):
        self.traffic(project, hours_ago=1, prefix="a")
        self.traffic(project, hours_ago=30, prefix="b")
        page = expert_client.get("/projects/acme/monitoring/").content.decode()
        low, high = proportion_interval(10, 22)
        assert 'id="feedback-overview"' in page
        assert f'<strong>45%</strong> <span class="ci">({low:.0%}–{high:.0%})</span> of 22' in page
