"""A series can be judged on all production traffic instead of the sample, from a point in the trace stream on: the
setting's history (a change applies to the traces stored after it, like the sampling rate)."""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0005_checks_replace_judge_versions"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="SeriesTraffic",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("all_traffic", models.BooleanField()),
                ("after_trace_id", models.BigIntegerField()),
                ("set_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "series",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="traffic",
                        to="monitoring.monitoredseries",
                    ),
                ),
                (
                    "set_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["series", "after_trace_id", "id"],
                "indexes": [models.Index(fields=["series", "after_trace_id"], name="series_traffic_history")],
            },
        ),
    ]
