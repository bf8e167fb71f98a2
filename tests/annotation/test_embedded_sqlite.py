"""The embedded default (`make run` with nothing set) is SQLite: the metadata filter of the queue and of the
counts must work there too. Runs in a child process, because the test database here is PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", verbosity=0)
    from django.contrib.auth.models import User
    from annotation.count_filters import CountFilters
    from annotation.models import FailureMode, Note, NoteFailureMode, Trace
    from annotation.queue import QueueParams, filter_traces
    from annotation.services import project_create
    from annotation.taxonomy import failure_mode_table

    expert = User.objects.create_user("expert")
    project = project_create(slug="embedded", name="Embedded", expert=expert)
    mode = FailureMode.objects.create(project=project, name="tone")
    for external_id, meta in [("de", {"locale": "de"}), ("en", {"locale": "en"}), ("two", {"retries": 2})]:
        trace = Trace.objects.create(project=project, external_id=external_id, metadata=meta)
        note = Note.objects.create(trace=trace, author=expert, text="curt")
        NoteFailureMode.objects.create(note=note, failure_mode=mode, trace=trace)

    def ids(key, value):
        traces = filter_traces(Trace.objects.filter(project=project), QueueParams(meta_key=key, meta_value=value))
        return sorted(traces.values_list("external_id", flat=True))

    assert ids("locale", "de") == ["de"], ids("locale", "de")
    assert ids("retries", "2") == ["two"], ids("retries", "2")
    assert ids("locale", "fr") == []
    table = failure_mode_table(project=project, filters=CountFilters(meta_key="locale", meta_value="en"))
    assert [(c.name, c.trace_count) for c in table.counts] == [("tone", 1)], table

    # The reliability numbers count in SQL (buckets, weeks, months, subqueries): the same there.
    from annotation.models import Criterion
    from annotation.services import LabelContext, label_submit
    from judges.reliability import drift, fatigue, rater_agreement, self_agreement

    criterion = Criterion.objects.create(project=project, name="tone")
    for position, trace in enumerate(Trace.objects.order_by("id"), start=19):
        context = LabelContext(sitting_position=position, seconds_on_trace=position, via="random")
        label_submit(trace=trace, criterion=criterion, verdict="fail", critique="", user=expert, context=context)
    rows = [(row.label, row.n, row.fails, row.median_seconds) for row in fatigue(project=project)]
    assert rows == [("1–20", 2, 2, 19.5), ("21–40", 1, 1, 21.0)], rows
    [item] = drift(project=project)
    assert (sum(row.n for _, row in item.weeks), item.labels, item.changed_later) == (3, 3, 0), item
    assert self_agreement(project=project) == [] and rater_agreement(project=project) == []
    print("ok")
    """
)


def test_metadata_filters_work_on_the_embedded_sqlite_database(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "EVALSTUDIO_VAR_DIR"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="evalstudio.settings",
        EVALSTUDIO_VAR_DIR=str(tmp_path),
        SECRET_KEY="embedded-test",
        PYTHONPATH=str(ROOT),
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
