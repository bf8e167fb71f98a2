"""Storing an uploaded trace file and queuing its import, as a service: what is refused, what is stored, and that
the worker is asked only once the job row is committed."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from annotation.models import ImportJob
from annotation.services import DomainError
from annotation.tasks import import_job_task
from annotation.uploads import import_job_create

pytestmark = pytest.mark.django_db
CONTENT = b'{"id": "u-1", "input": "q"}\n'


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(import_job_task, "delay", sent.append)  # the broker is not under test here
    return sent


def test_the_file_is_stored_under_the_project_and_the_job_queued_after_commit(
    project, expert, queued, tmp_path, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job = import_job_create(
            project=project, user=expert, upload=SimpleUploadedFile("Day 1.NDJSON", CONTENT), on_conflict="update"
        )
        assert queued == []  # nothing is sent before the row is committed
    for callback in callbacks:
        callback()
    assert queued == [job.pk]
    # The job names the file in the storage, not on a filesystem: the worker may run on another machine.
    assert job.file_path.startswith("imports/acme/") and job.file_path.endswith(".ndjson")
    stored = tmp_path / "media" / job.file_path
    assert stored.read_bytes() == CONTENT
    assert (job.file_name, job.file_format, job.on_conflict, job.bytes_total, job.status, job.user) == (
        "Day 1.NDJSON",
        "jsonl",
        "update",
        len(CONTENT),
        "queued",
        expert,
    )


@pytest.mark.parametrize(
    ("name", "content", "on_conflict", "message"),
    [
        (
            "traces.txt",
            CONTENT,
            "skip",
            "traces.txt: only .jsonl, .ndjson, .csv and .parquet files can be imported as the trace format; choose "
            "the format for a file exported by another tool (OTLP JSON, Phoenix, Langfuse).",
        ),
        ("traces.csv", b"", "skip", "traces.csv is empty."),
        ("traces.jsonl", CONTENT, "merge", "On conflict must be one of skip, update."),
        ("traces.jsonl", CONTENT * 100, "skip", "traces.jsonl is too large: the limit is 100\xa0bytes."),
    ],
)
def test_a_bad_file_or_option_is_refused_and_nothing_is_stored(
    project, expert, queued, settings, tmp_path, name, content, on_conflict, message
):
    settings.EVALSTUDIO_MAX_UPLOAD_BYTES = 100
    with pytest.raises(DomainError) as refused:
        import_job_create(
            project=project, user=expert, upload=SimpleUploadedFile(name, content), on_conflict=on_conflict
        )
    assert str(refused.value) == message
    assert not ImportJob.objects.exists() and queued == []
    assert not (tmp_path / "media").exists()
