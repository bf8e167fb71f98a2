"""Migration 0009 gives the alignment reports already stored (runs and promotions) the intervals reports have now:
the percentile bootstrap's [1, 1] for a perfect matrix does not stay on the pages of runs finished before."""

from __future__ import annotations

import importlib

import pytest
from django.apps import apps

from judges.models import JudgeRun, Promotion
from judges.stats import ConfusionMatrix, alignment_report
from tests.monitoring.helpers import promoted_judge

pytestmark = pytest.mark.django_db
migration = importlib.import_module("judges.migrations.0010_reports_get_intervals_that_do_not_collapse")


def test_stored_reports_get_intervals_that_do_not_collapse_and_keep_everything_else(project):
    promotion = promoted_judge(project, labelled=90)  # agrees with the expert on every dev trace
    run = promotion.dev_run
    old = {**run.report, "ci": {name: [1.0, 1.0] for name in run.report["ci"]}, "note": "kept"}
    JudgeRun.objects.filter(pk=run.pk).update(report=old)
    Promotion.objects.filter(pk=promotion.pk).update(report=old)
    counts_missing = JudgeRun.objects.create(version=run.version, split="test", report={"ci": {}, "n": 0})

    migration.recompute_intervals(apps, None)

    expected = alignment_report(ConfusionMatrix.from_report(old), errors=old["errors"], split=old["split"])
    for stored in (JudgeRun.objects.get(pk=run.pk).report, Promotion.objects.get(pk=promotion.pk).report):
        assert stored["ci"] == expected["ci"]
        assert stored["ci"]["tpr"][0] < 0.95 and stored["ci"]["kappa"][0] < 0.95
        assert {key: value for key, value in stored.items() if key != "ci"} == {
            key: value for key, value in old.items() if key != "ci"
        }
    assert JudgeRun.objects.get(pk=counts_missing.pk).report == {"ci": {}, "n": 0}
