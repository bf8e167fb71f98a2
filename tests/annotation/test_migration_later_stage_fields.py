"""Migration 0013 hands annotation's later-stage fields to the apps that own them, keeping every value (the
sampled flags of traces become the project's rate: the sample now follows from the rate history)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from judges.models import PromotionBar
from monitoring.models import SamplingRate
from suites.models import SuiteFloor

BEFORE = [
    ("annotation", "0012_trace_agent_trials_index"),
    ("judges", "0005_promotion"),
    ("monitoring", "0001_initial"),
    ("suites", "0003_suiterun_queued_heartbeat"),
]


@pytest.mark.django_db(transaction=True)
def test_rates_bars_and_floors_survive_the_move():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(BEFORE).apps
        Project, Trace = old.get_model("annotation", "Project"), old.get_model("annotation", "Trace")
        Criterion = old.get_model("annotation", "Criterion")
        plain = Project.objects.create(slug="plain", name="Plain")
        tuned = Project.objects.create(
            slug="tuned", name="Tuned", production_sampling_rate=0.4, promotion_min_tpr=0.95, promotion_min_tnr=0.8
        )
        Trace.objects.create(project=tuned, external_id="s", monitor_sampled=True)
        floored = Criterion.objects.create(project=tuned, name="tone", suite_min_pass_rate=0.7)
        Criterion.objects.create(project=plain, name="tone")

        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())

        rates = SamplingRate.objects.values_list("project_id", "rate", "after_trace_id")
        assert list(rates) == [(tuned.pk, 0.4, 0)]
        assert list(PromotionBar.objects.values_list("project_id", "min_tpr", "min_tnr")) == [(tuned.pk, 0.95, 0.8)]
        assert list(SuiteFloor.objects.values_list("criterion_id", "min_pass_rate")) == [(floored.pk, 0.7)]
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
