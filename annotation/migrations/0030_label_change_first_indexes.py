import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0029_label_change_first"),
    ]

    operations = [
        migrations.AlterField(
            model_name="labelchange",
            name="criterion",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="annotation.criterion",
            ),
        ),
        migrations.AddIndex(
            model_name="labelchange",
            index=models.Index(
                condition=models.Q(("is_first", True)),
                fields=["criterion", "sitting_position"],
                include=("verdict", "seconds_on_trace", "author"),
                name="label_change_first",
            ),
        ),
        migrations.AddIndex(
            model_name="labelchange",
            index=models.Index(
                condition=models.Q(("is_first", True), ("via", "random")),
                fields=["criterion", "changed_at"],
                include=("verdict", "author"),
                name="label_change_first_random",
            ),
        ),
        migrations.AddIndex(
            model_name="labelchange",
            index=models.Index(
                condition=models.Q(("is_first", False)),
                fields=["criterion"],
                include=("label", "verdict"),
                name="label_change_later",
            ),
        ),
        migrations.AddIndex(
            model_name="trace",
            index=models.Index(
                condition=models.Q(("reviewed_at__isnull", False)),
                fields=["project", "shuffle_key", "id"],
                name="trace_reviewed_random",
            ),
        ),
    ]
