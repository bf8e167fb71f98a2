"""Browser uploads: the view, the ImportJob, a real Celery worker, and the polling progress page."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from annotation.models import ImportJob, Label, Role, Trace
from annotation.tasks import import_job_task
from core.runs import runs_resume, stale_window
from tests.factories import add_member, make_project, make_user

GOOD = (
    b'{"id": "u-1", "input": "q", "labels": [{"criterion": "factual", "verdict": "fail", "critique": "no"}]}\n'
    b'{"id": "u-2", "output": "o"}\n'
    b'{"id": "u-3", "trial": "two", "input": "q"}\n'
)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


def upload(client: Client, content: bytes = GOOD, name: str = "traces.jsonl", **fields: str):
    file = SimpleUploadedFile(name, content, content_type="application/octet-stream")
    return client.post(reverse("import_upload", args=["acme"]), {"file": file, **fields})


def wait_until_finished(job_id: int, timeout: float = 30) -> ImportJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = ImportJob.objects.get(pk=job_id)
        if job.is_finished:
            return job
        time.sleep(0.1)
    raise AssertionError(f"import job {job_id} did not finish in {timeout} s (status {job.status})")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_upload_is_imported_by_the_worker_with_rejections_listed(celery_worker, project, expert_client):
    response = upload(expert_client)
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("import_detail", args=["acme", job.pk])
    job = wait_until_finished(job.pk)
    assert (job.status, job.error) == ("done", "")
    assert (job.created_count, job.duplicate_count, job.rejected_count) == (2, 0, 1)
    assert job.rejections == [{"line": 3, "id": "u-3", "error": 'trial: expected an integer, got "two"'}]
    assert job.bytes_done == job.bytes_total == len(GOOD)
    assert set(Trace.objects.filter(project=project).values_list("external_id", flat=True)) == {"u-1", "u-2"}
    assert Label.objects.get().author == project.expert
    assert not default_storage.exists(job.file_path)  # the upload is deleted once imported

    page = expert_client.get(response["Location"])
    assert page.status_code == 200
    assert b"trial: expected an integer, got &quot;two&quot;" in page.content
    assert b'hx-trigger="every 1s"' not in page.content  # finished: nothing left to poll


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_csv_upload_is_imported_by_the_worker(celery_worker, project, teammate_client):
    response = upload(teammate_client, b"id,input\nc-1,hello\nc-2,world\n", name="traces.csv")
    job = wait_until_finished(ImportJob.objects.get().pk)
    assert response.status_code == 302
    assert (job.status, job.created_count, job.user.username) == ("done", 2, "teammate")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_unreadable_file_fails_the_job_with_a_clear_error(celery_worker, project, expert_client):
    upload(expert_client, b"id,inptu\nx,y\n", name="bad.csv")
    job = wait_until_finished(ImportJob.objects.get().pk)
    assert job.status == "failed"
    assert job.error == "line 1: unknown CSV column 'inptu' (did you mean 'input'?)"
    assert Trace.objects.count() == 0


@pytest.mark.django_db
def test_running_the_task_twice_imports_once(project, expert_client):
    upload(expert_client)
    job = ImportJob.objects.get()
    assert import_job_task(job.pk) == "done"
    assert import_job_task(job.pk) == "not claimable (finished or deleted)"
    assert Trace.objects.filter(project=project).count() == 2
    assert ImportJob.objects.get().created_count == 2


@pytest.mark.django_db
def test_a_job_whose_worker_died_is_claimed_again_and_imports_each_trace_once(project, expert_client):
    upload(expert_client)
    job = ImportJob.objects.get()
    # The lost run had written one trace and then went silent.
    Trace.objects.create(project=project, external_id="u-1", input="q")
    ImportJob.objects.filter(pk=job.pk).update(
        status=ImportJob.Status.RUNNING, heartbeat_at=timezone.now() - stale_window() - timedelta(seconds=1)
    )
    assert import_job_task(job.pk) == "done"
    job.refresh_from_db()
    assert sorted(Trace.objects.filter(project=project).values_list("external_id", flat=True)) == ["u-1", "u-2"]
    assert (job.created_count, job.duplicate_count, job.rejected_count) == (1, 1, 1)


@pytest.mark.django_db
def test_a_job_running_elsewhere_is_retried_later_not_run_twice(project, expert_client):
    upload(expert_client)
    job = ImportJob.objects.get()
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING, heartbeat_at=timezone.now())
    with pytest.raises(Retry):
        import_job_task(job.pk)
    assert Trace.objects.filter(project=project).count() == 0
    assert ImportJob.objects.get().status == ImportJob.Status.RUNNING


@pytest.mark.django_db
def test_worker_start_requeues_waiting_and_orphaned_jobs_now_and_running_ones_for_when_they_go_stale(
    project, expert, monkeypatch
):
    now = timezone.now()
    stale = now - stale_window() - timedelta(seconds=1)

    def job(status: str, heartbeat_at=None) -> int:
        return ImportJob.objects.create(
            project=project,
            user=expert,
            file_name="f.jsonl",
            file_path="/nonexistent",
            status=status,
            heartbeat_at=heartbeat_at,
            created_at=stale,
        ).pk

    waiting = job(ImportJob.Status.QUEUED)
    orphaned = job(ImportJob.Status.RUNNING, stale)
    # Its worker may have died a moment ago: the delivery comes when the heartbeat would be stale.
    beating = job(ImportJob.Status.RUNNING, now)
    job(ImportJob.Status.DONE, stale)
    sent: dict[int, float | None] = {}

    def apply_async(args: tuple[int], countdown: float | None = None) -> None:
        sent[args[0]] = countdown

    monkeypatch.setattr(import_job_task, "apply_async", apply_async)  # the broker is not under test here
    assert sorted(runs_resume(now=now)["annotation.ImportJob"]) == sorted([waiting, orphaned, beating])
    assert sorted(sent) == sorted([waiting, orphaned, beating])
    assert sent[waiting] is None and sent[orphaned] is None
    assert stale_window().total_seconds() <= sent[beating] <= stale_window().total_seconds() + 1


@pytest.mark.django_db
def test_progress_partial_polls_while_running_and_stops_when_done(project, expert, expert_client):
    job = ImportJob.objects.create(
        project=project, user=expert, file_name="t.jsonl", file_path="/nonexistent", bytes_total=200, bytes_done=50
    )
    url = reverse("import_detail", args=["acme", job.pk])
    running = expert_client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200
    assert b'hx-trigger="every 1s"' in running.content
    assert b"<html" not in running.content  # only the partial
    assert b"25%" in running.content

    ImportJob.objects.filter(pk=job.pk).update(status="done", created_count=7, bytes_done=200)
    finished = expert_client.get(url, headers={"HX-Request": "true"})
    assert finished.status_code == 286
    assert b'hx-trigger="every 1s"' not in finished.content
    assert b"<dd>7</dd>" in finished.content


@pytest.mark.django_db
def test_wrong_file_type_is_refused_with_a_message(project, expert_client):
    response = upload(expert_client, b"hello", name="traces.txt")
    assert response.status_code == 302
    assert ImportJob.objects.count() == 0
    page = expert_client.get(response["Location"])
    assert (
        b"traces.txt: only .jsonl, .ndjson, .csv and .parquet files can be imported as the trace format" in page.content
    )


@pytest.mark.django_db
def test_oversize_file_is_refused(project, expert_client, settings):
    settings.EVALSTUDIO_MAX_UPLOAD_BYTES = 10
    response = upload(expert_client)
    assert response.status_code == 302
    assert ImportJob.objects.count() == 0
    assert b"too large" in expert_client.get(response["Location"]).content


@pytest.mark.django_db
def test_missing_file_is_refused(project, expert_client):
    response = expert_client.post(reverse("import_upload", args=["acme"]), {})
    assert response.status_code == 302
    assert ImportJob.objects.count() == 0


@pytest.mark.django_db
def test_viewer_cannot_upload_and_sees_no_form(project):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    assert upload(client).status_code == 403
    assert b'name="file"' not in client.get(reverse("project_detail", args=["acme"])).content


@pytest.mark.django_db
def test_expert_sees_the_upload_form(project, expert_client):
    assert b'name="file"' in expert_client.get(reverse("project_detail", args=["acme"])).content


@pytest.mark.django_db
def test_outsider_gets_404_for_upload_and_progress(project, expert, outsider_client):
    job = ImportJob.objects.create(project=project, user=expert, file_name="t.jsonl", file_path="/nonexistent")
    assert upload(outsider_client).status_code == 404
    assert outsider_client.get(reverse("import_detail", args=["acme", job.pk])).status_code == 404
    assert ImportJob.objects.count() == 1


@pytest.mark.django_db
def test_job_of_another_project_is_404(project, expert, expert_client):
    other = make_project(slug="other", expert=expert)
    job = ImportJob.objects.create(project=other, user=expert, file_name="t.jsonl", file_path="/nonexistent")
    assert expert_client.get(reverse("import_detail", args=["acme", job.pk])).status_code == 404


@pytest.mark.django_db
def test_upload_without_csrf_token_is_refused(project, expert):
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    assert upload(client).status_code == 403
    assert ImportJob.objects.count() == 0


@pytest.mark.django_db
def test_update_mode_is_recorded_on_the_job(project, expert_client):
    upload(expert_client, on_conflict="update")
    assert ImportJob.objects.get().on_conflict == "update"


@pytest.mark.django_db
def test_unknown_conflict_mode_is_refused(project, expert_client):
    response = upload(expert_client, on_conflict="merge")
    assert response.status_code == 302
    assert ImportJob.objects.count() == 0


@pytest.mark.django_db
def test_a_peer_export_uploaded_with_its_format_is_imported(project, expert_client):
    from tests.annotation.test_peer_imports import LANGFUSE_TRACE

    content = json.dumps([LANGFUSE_TRACE]).encode()
    response = upload(expert_client, content, name="langfuse-export.json", file_format="langfuse")
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert job.file_format == "langfuse"
    assert import_job_task(job.pk) == "done"
    trace = Trace.objects.get(project=project)
    assert (trace.external_id, trace.input) == ("lf-trace-1", "Can I change my address?")


@pytest.mark.django_db
def test_an_unknown_format_is_refused_and_nothing_stored(project, expert_client):
    response = upload(expert_client, b"{}", name="x.json", file_format="excel")
    assert ImportJob.objects.count() == 0
    page = expert_client.get(response["Location"])
    assert b"Format must be one of jsonl, csv, " in page.content and b"langfuse" in page.content
