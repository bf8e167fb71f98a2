from django.db import migrations


def create_gin(apps, schema_editor):
    # jsonb_path_ops makes `metadata @> {"key": "value"}` (the queue's metadata filter) an index scan.
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            "CREATE INDEX IF NOT EXISTS trace_metadata_gin ON annotation_trace USING gin (metadata jsonb_path_ops)"
        )


def drop_gin(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS trace_metadata_gin")


class Migration(migrations.Migration):
    dependencies = [("annotation", "0001_initial")]
    operations = [migrations.RunPython(create_gin, drop_gin)]
