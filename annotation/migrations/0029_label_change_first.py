import django.db.models.deletion
from django.db import migrations, models


def backfill(apps, schema_editor):
    """Each entry's criterion is its label's; a label's first entry is its lowest id (what judges.reliability
    computed on every read until now)."""
    Label = apps.get_model("annotation", "Label")
    LabelChange = apps.get_model("annotation", "LabelChange")
    LabelChange.objects.update(
        criterion_id=models.Subquery(Label.objects.filter(pk=models.OuterRef("label_id")).values("criterion_id")[:1])
    )
    firsts = LabelChange.objects.values("label_id").annotate(first=models.Min("id")).values("first")
    LabelChange.objects.filter(id__in=firsts).update(is_first=True)


class Migration(migrations.Migration):
    # The backfill's updates leave deferred foreign-key checks pending until commit, and PostgreSQL refuses to alter
    # a table with pending checks: the NOT NULL and the indexes come in the next migration, its own transaction.

    dependencies = [
        ("annotation", "0028_calibration_raters"),
    ]

    operations = [
        migrations.AddField(
            model_name="labelchange",
            name="criterion",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="annotation.criterion",
            ),
        ),
        migrations.AddField(
            model_name="labelchange",
            name="is_first",
            field=models.BooleanField(default=False),
        ),
        migrations.RunPython(backfill, migrations.RunPython.noop),
    ]
