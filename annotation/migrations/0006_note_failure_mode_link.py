"""The note ↔ failure-mode table becomes an explicit model that also carries the note's trace.

The table and its rows stay; only Django's view of it changes first (SeparateDatabaseAndState, as in Django's
"changing a ManyToManyField to use a through model"), then the trace column is added and filled from the notes.
"""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("annotation", "0005_trace_project_no_separate_index"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="NoteFailureMode",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        (
                            "note",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="mode_links",
                                to="annotation.note",
                            ),
                        ),
                        (
                            "failure_mode",
                            models.ForeignKey(
                                db_column="failuremode_id",
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="note_links",
                                to="annotation.failuremode",
                            ),
                        ),
                    ],
                    options={
                        "db_table": "annotation_note_failure_modes",
                        "unique_together": {("note", "failure_mode")},
                    },
                ),
                migrations.AlterField(
                    model_name="note",
                    name="failure_modes",
                    field=models.ManyToManyField(
                        blank=True, related_name="notes", through="annotation.NoteFailureMode", to="annotation.failuremode"
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="notefailuremode",
            name="trace",
            field=models.ForeignKey(
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="annotation.trace",
            ),
        ),
        migrations.RunSQL(
            "UPDATE annotation_note_failure_modes SET trace_id ="
            " (SELECT trace_id FROM annotation_note WHERE annotation_note.id = annotation_note_failure_modes.note_id)",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.AlterField(
            model_name="notefailuremode",
            name="trace",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="+",
                to="annotation.trace",
            ),
        ),
        migrations.AddField(
            model_name="notefailuremode",
            name="created_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
        migrations.AlterField(
            model_name="notefailuremode",
            name="failure_mode",
            field=models.ForeignKey(
                db_column="failuremode_id",
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="note_links",
                to="annotation.failuremode",
            ),
        ),
        migrations.AddIndex(
            model_name="notefailuremode",
            index=models.Index(fields=["failure_mode", "trace"], name="note_mode_by_trace"),
        ),
    ]
