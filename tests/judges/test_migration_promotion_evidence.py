"""Migration 0011 keeps every promotion's evidence: the promotions made on a dev run keep that report as their
evidence, marked as dev, and as their dev report; none gains a test run it was not promoted on."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from judges.models import Promotion

BEFORE = [("judges", "0010_reports_get_intervals_that_do_not_collapse")]
AFTER = [("judges", "0011_promotion_test_evidence")]
DEV_REPORT = {"n": 40, "tp": 20, "fn": 0, "fp": 1, "tn": 19, "tpr": 1.0, "tnr": 0.95, "ci": {}, "split": "dev"}


@pytest.mark.django_db(transaction=True)
def test_promotions_made_on_dev_keep_their_dev_evidence_marked_as_such():
    executor = MigrationExecutor(connection)
    # Every other app as it is now (only judges goes back), so the old models match the tables.
    before = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "judges"] + BEFORE
    executor.migrate(BEFORE)
    try:
        old = executor.loader.project_state(before).apps
        project = old.get_model("annotation", "Project").objects.create(slug="old", name="Old")
        criterion = old.get_model("annotation", "Criterion").objects.create(project=project, name="tone")
        judge = old.get_model("judges", "Judge").objects.create(
            project=project, criterion=criterion, name="t", kind="assertion"
        )
        version = old.get_model("judges", "JudgeVersion").objects.create(judge=judge, number=1)
        run = old.get_model("judges", "JudgeRun").objects.create(
            version=version, split="dev", status="done", report=DEV_REPORT
        )
        promotion = old.get_model("judges", "Promotion").objects.create(
            criterion=criterion, version=version, dev_run=run, report=DEV_REPORT, min_tpr=0.9, min_tnr=0.9
        )

        executor.loader.build_graph()
        executor.migrate(AFTER)

        # Only the columns that exist at 0011: later migrations add others to the model (the bias battery's).
        migrated = Promotion.objects.only("evidence_split", "report", "dev_report", "dev_run", "test_run").get(
            pk=promotion.pk
        )
        assert (migrated.evidence_split, migrated.on_test_evidence) == ("dev", False)
        assert migrated.report == migrated.dev_report == DEV_REPORT
        assert (migrated.dev_run_id, migrated.test_run_id) == (run.pk, None)
    finally:
        executor.loader.build_graph()
        executor.migrate(executor.loader.graph.leaf_nodes())
