"""Migrations 0003–0005 move monitoring's rows from judge versions to monitored checks and series, keeping every
verdict, cursor, rule and alert. (Unapplying them runs in tests/annotation/test_migration_later_stage_fields.py; a
second round trip here would double this test's time.)"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from judges.services import judge_create
from monitoring.models import Alert, AlertRule, MonitorCursor, MonitoredCheck, MonitoredSeries, MonitorJudgment
from tests.factories import make_criterion, make_trace
from tests.monitoring.helpers import NO_APOLOGY

BEFORE = [("monitoring", "0002_sampling_moves_here")]
MOMENT = datetime(2026, 11, 20, 10, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_verdicts_cursors_rules_and_alerts_move_to_checks_and_series(project):
    criterion = make_criterion(project=project, name="no_apology")
    other = make_criterion(project=project, name="tone")
    judge = judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=NO_APOLOGY)
    first = judge.latest_version()
    traces = [make_trace(project=project, external_id=f"p-{i}", source="production") for i in range(4)]
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        Judgment, Cursor = old.get_model("monitoring", "MonitorJudgment"), old.get_model("monitoring", "MonitorCursor")
        Rule, OldAlert = old.get_model("monitoring", "AlertRule"), old.get_model("monitoring", "Alert")
        for i, trace in enumerate(traces):
            Judgment.objects.create(
                project_id=project.pk, criterion_id=criterion.pk, version_id=first.pk, trace_id=trace.pk,
                occurred_at=MOMENT, verdict="fail" if i == 0 else "pass",
            )  # fmt: skip
        Cursor.objects.create(project_id=project.pk, version_id=first.pk, last_trace_id=traces[-1].pk)
        rule = Rule.objects.create(project_id=project.pk, criterion_id=criterion.pk, threshold=0.9)
        quiet = Rule.objects.create(project_id=project.pk, criterion_id=other.pk, threshold=0.5)
        alert = OldAlert.objects.create(
            rule_id=rule.pk, project_id=project.pk, criterion_id=criterion.pk, version_id=first.pk, bucket="hour",
            bucket_start=MOMENT, bucket_end=MOMENT, judged=4, passes=3, value=0.75, low=0.3, high=0.95, message="m",
        )  # fmt: skip

        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

        series = MonitoredSeries.objects.get(subject_id=criterion.pk)
        assert (series.provider, series.name, series.criterion_id, series.project_id) == (
            "judge", "no_apology", criterion.pk, project.pk
        )  # fmt: skip
        check = MonitoredCheck.objects.get()
        assert (check.series_id, check.key, check.label) == (series.pk, first.pk, "apology v1")
        assert sorted(MonitorJudgment.objects.values_list("trace_id", "verdict", "monitored_check_id")) == [
            (t.pk, "fail" if i == 0 else "pass", check.pk) for i, t in enumerate(traces)
        ]
        assert MonitorCursor.objects.get().monitored_check_id == check.pk
        assert MonitorCursor.objects.get().last_trace_id == traces[-1].pk
        assert AlertRule.objects.get(pk=rule.pk).series_id == series.pk
        # A rule of a criterion that was never judged gets its criterion's series too.
        assert AlertRule.objects.get(pk=quiet.pk).series.criterion_id == other.pk
        moved = Alert.objects.get(pk=alert.pk)
        assert (moved.series_id, moved.monitored_check_id, moved.judged) == (series.pk, check.pk, 4)
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
