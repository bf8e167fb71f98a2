from django.db import migrations

BATCH = 500


def recompute_intervals(apps, schema_editor):
    """Stored alignment reports carried percentile-bootstrap intervals, [1, 1] for a perfect matrix: give them the
    intervals the report has now (judges.stats.confidence_intervals) from the counts they hold. Nothing else in a
    report changes; a report without the four counts is left alone."""
    from judges.stats import ConfusionMatrix, confidence_intervals

    def updated(report):
        if not isinstance(report, dict) or not isinstance(report.get("ci"), dict):
            return None
        try:
            cm = ConfusionMatrix.from_report(report)
        except (TypeError, ValueError):
            return None
        intervals = confidence_intervals(cm)
        ci = {name: None if interval is None else [interval[0], interval[1]] for name, interval in intervals.items()}
        return {**report, "ci": ci}

    for name in ("JudgeRun", "Promotion"):
        model = apps.get_model("judges", name)
        batch = []
        for row in model.objects.exclude(report=None).only("id", "report").iterator(chunk_size=BATCH):
            report = updated(row.report)
            if report is not None:
                row.report = report
                batch.append(row)
            if len(batch) >= BATCH:
                model.objects.bulk_update(batch, ["report"])
                batch = []
        model.objects.bulk_update(batch, ["report"])


class Migration(migrations.Migration):
    dependencies = [
        ("judges", "0009_judge_version_snapshot_freezes_the_llm_prompt"),
    ]

    # Going back keeps the new intervals: they are valid for the same counts, and the old ones cannot be rebuilt.
    operations = [migrations.RunPython(recompute_intervals, migrations.RunPython.noop)]
