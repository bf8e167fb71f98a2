"""The judge-version references of monitoring's rows go (0004 moved their data to checks and series), and the
check and series references are required. The verdicts' indexes now lead with the check."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0004_verdicts_rules_and_alerts_move_to_checks")]

    operations = [
        # The old references go; the new ones are required.
        migrations.RemoveConstraint(model_name="monitorjudgment", name="monitor_judgment_unique_version_trace"),
        migrations.RemoveIndex(model_name="monitorjudgment", name="monitor_judgment_series"),
        migrations.RemoveField(model_name="monitorjudgment", name="version"),
        migrations.RemoveField(model_name="monitorjudgment", name="criterion"),
        migrations.RemoveField(model_name="monitorcursor", name="version"),
        migrations.RemoveField(model_name="alertrule", name="criterion"),
        migrations.RemoveField(model_name="alert", name="criterion"),
        migrations.RemoveField(model_name="alert", name="version"),
        migrations.AlterField(
            model_name="monitorjudgment",
            name="monitored_check",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="monitoring.monitoredcheck",
            ),
        ),
        migrations.AlterField(
            model_name="monitorcursor",
            name="monitored_check",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="monitoring.monitoredcheck"
            ),
        ),
        migrations.AlterField(
            model_name="alertrule",
            name="series",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="rules", to="monitoring.monitoredseries"
            ),
        ),
        migrations.AlterField(
            model_name="alert",
            name="series",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="+", to="monitoring.monitoredseries"
            ),
        ),
        migrations.AddConstraint(
            model_name="monitorjudgment",
            constraint=models.UniqueConstraint(
                fields=("monitored_check", "trace"), name="monitor_judgment_unique_check_trace"
            ),
        ),
        migrations.AddIndex(
            model_name="monitorjudgment",
            index=models.Index(
                fields=["monitored_check", "occurred_at"], include=("verdict",), name="monitor_judgment_series"
            ),
        ),
        migrations.AlterModelOptions(name="alertrule", options={"ordering": ["id"]}),
    ]
