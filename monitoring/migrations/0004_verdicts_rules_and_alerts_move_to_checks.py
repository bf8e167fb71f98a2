"""Every existing cursor, verdict, rule and alert moves to a monitored check and series: each judge version that has
any becomes a check of its criterion's series (provider "judge"), and each rule and alert moves to its criterion's
series. Unapplying moves them back; what the earlier schema cannot hold (other providers' checks) is deleted then.
"""

from django.db import migrations

# monitoring.checks.JUDGE: the provider of a criterion's promoted judge versions.
JUDGE = "judge"


def to_checks(apps, schema_editor):
    Criterion = apps.get_model("annotation", "Criterion")
    JudgeVersion = apps.get_model("judges", "JudgeVersion")
    Series = apps.get_model("monitoring", "MonitoredSeries")
    Check = apps.get_model("monitoring", "MonitoredCheck")
    Judgment = apps.get_model("monitoring", "MonitorJudgment")
    Cursor = apps.get_model("monitoring", "MonitorCursor")
    Rule = apps.get_model("monitoring", "AlertRule")
    Alert = apps.get_model("monitoring", "Alert")

    series_ids: dict[int, int] = {}

    def series_of(criterion_id: int) -> int:
        if criterion_id not in series_ids:
            criterion = Criterion.objects.get(pk=criterion_id)
            series, _ = Series.objects.get_or_create(
                provider=JUDGE,
                subject_id=criterion.pk,
                defaults={"project_id": criterion.project_id, "name": criterion.name, "criterion_id": criterion.pk},
            )
            series_ids[criterion_id] = series.pk
        return series_ids[criterion_id]

    # Each version's verdicts in one UPDATE over its index range: a handful of statements at a million verdicts.
    version_ids = (
        set(Judgment.objects.values_list("version_id", flat=True).distinct().order_by())
        | set(Cursor.objects.values_list("version_id", flat=True))
        | set(Alert.objects.exclude(version_id=None).values_list("version_id", flat=True).distinct().order_by())
    )
    for version in JudgeVersion.objects.filter(pk__in=version_ids).select_related("judge").order_by("pk"):
        check, _ = Check.objects.get_or_create(
            series_id=series_of(version.judge.criterion_id),
            key=version.pk,
            defaults={"label": f"{version.judge.name} v{version.number}"},
        )
        Judgment.objects.filter(version_id=version.pk).update(monitored_check_id=check.pk)
        Cursor.objects.filter(version_id=version.pk).update(monitored_check_id=check.pk)
        Alert.objects.filter(version_id=version.pk).update(monitored_check_id=check.pk)
    criterion_ids = set(Rule.objects.values_list("criterion_id", flat=True)) | set(
        Alert.objects.values_list("criterion_id", flat=True)
    )
    for criterion_id in sorted(criterion_ids):
        Rule.objects.filter(criterion_id=criterion_id).update(series_id=series_of(criterion_id))
        Alert.objects.filter(criterion_id=criterion_id).update(series_id=series_of(criterion_id))


def to_versions(apps, schema_editor):
    Series = apps.get_model("monitoring", "MonitoredSeries")
    Check = apps.get_model("monitoring", "MonitoredCheck")
    Judgment = apps.get_model("monitoring", "MonitorJudgment")
    Cursor = apps.get_model("monitoring", "MonitorCursor")
    Rule = apps.get_model("monitoring", "AlertRule")
    Alert = apps.get_model("monitoring", "Alert")
    for check in Check.objects.filter(series__provider=JUDGE).select_related("series"):
        criterion_id = check.series.criterion_id
        Judgment.objects.filter(monitored_check_id=check.pk).update(version_id=check.key, criterion_id=criterion_id)
        Cursor.objects.filter(monitored_check_id=check.pk).update(version_id=check.key)
        Alert.objects.filter(monitored_check_id=check.pk).update(version_id=check.key)
    for series in Series.objects.filter(provider=JUDGE).exclude(criterion_id=None):
        Rule.objects.filter(series_id=series.pk).update(criterion_id=series.criterion_id)
        Alert.objects.filter(series_id=series.pk).update(criterion_id=series.criterion_id)
    # What the earlier schema cannot hold: the verdicts, cursors, rules and alerts of other providers' checks.
    Judgment.objects.filter(version_id=None).delete()
    Cursor.objects.filter(version_id=None).delete()
    Alert.objects.filter(criterion_id=None).delete()
    Rule.objects.filter(criterion_id=None).delete()


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0003_monitored_checks_and_series")]

    operations = [migrations.RunPython(to_checks, to_versions)]
