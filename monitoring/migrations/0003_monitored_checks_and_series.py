"""Monitoring's judged unit becomes a monitored check (a promoted judge version, or an outcome grader promoted into
monitoring), and what its pages and alert rules follow a series (a criterion's, or an agent's task completion).
This step adds them beside the judge-version references, which 0004 moves the data from and 0005 removes. Three
migrations, each in its own transaction: PostgreSQL refuses to alter a table whose rows were updated earlier in the
same transaction.
"""

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0013_later_stages_own_their_fields"),
        ("judges", "0005_promotion"),
        ("monitoring", "0002_sampling_moves_here"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        # The series and the checks.
        migrations.CreateModel(
            name="MonitoredSeries",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("provider", models.CharField(max_length=32)),
                ("subject_id", models.BigIntegerField()),
                ("name", models.CharField(max_length=255)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "criterion",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="annotation.criterion",
                    ),
                ),
                (
                    "project",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="+", to="annotation.project"
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("provider", "subject_id"), name="monitored_series_unique_subject")
                ],
            },
        ),
        migrations.CreateModel(
            name="MonitoredCheck",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.BigIntegerField()),
                ("label", models.CharField(max_length=255)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "series",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="checks",
                        to="monitoring.monitoredseries",
                    ),
                ),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("series", "key"), name="monitored_check_unique_key")],
            },
        ),
        # The new references, empty until the data moves; the old ones may be empty from here on.
        migrations.AddField(
            model_name="monitorjudgment",
            name="monitored_check",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="monitoring.monitoredcheck",
            ),
        ),
        migrations.AddField(
            model_name="monitorcursor",
            name="monitored_check",
            field=models.OneToOneField(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="monitoring.monitoredcheck"
            ),
        ),
        migrations.AddField(
            model_name="alertrule",
            name="series",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="rules",
                to="monitoring.monitoredseries",
            ),
        ),
        migrations.AddField(
            model_name="alert",
            name="series",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="monitoring.monitoredseries",
            ),
        ),
        migrations.AddField(
            model_name="alert",
            name="monitored_check",
            field=models.ForeignKey(
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="monitoring.monitoredcheck",
            ),
        ),
        migrations.AlterField(
            model_name="monitorjudgment",
            name="version",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="judges.judgeversion"
            ),
        ),
        migrations.AlterField(
            model_name="monitorjudgment",
            name="criterion",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="annotation.criterion"
            ),
        ),
        migrations.AlterField(
            model_name="monitorcursor",
            name="version",
            field=models.OneToOneField(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="judges.judgeversion"
            ),
        ),
        migrations.AlterField(
            model_name="alertrule",
            name="criterion",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="annotation.criterion"
            ),
        ),
        migrations.AlterField(
            model_name="alert",
            name="criterion",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="annotation.criterion"
            ),
        ),
    ]
