from django.db import migrations


def say_text(apps, schema_editor):
    """Classifier versions made before the `features` setting read the output's words only. Writing that down as
    `"features": "text"` changes nothing they do (their artifact is a text pipeline either way), but a new version
    built from their config ("new version from current labels") then stays a text model instead of silently
    becoming a triple one, the default for configs that do not say."""
    JudgeVersion = apps.get_model("judges", "JudgeVersion")
    for version in JudgeVersion.objects.filter(judge__kind="classifier").exclude(config__has_key="features"):
        version.config = {**version.config, "features": "text"}
        version.save(update_fields=["config"])


class Migration(migrations.Migration):
    dependencies = [
        ("judges", "0015_judgment_skipped"),
    ]

    # Going back leaves the key: older code never reads it, and a text model is what those versions are.
    operations = [migrations.RunPython(say_text, migrations.RunPython.noop)]
