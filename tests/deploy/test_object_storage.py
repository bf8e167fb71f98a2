"""EVALSTUDIO_STORAGE_URL: uploads go to S3-compatible object storage and the worker reads them from the bucket.
Against a real S3 server on loopback (moto's server mode), through the real web view and a real Celery worker."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from moto.server import ThreadedMotoServer

from annotation.models import ImportJob, Trace
from annotation.uploads import import_job_create
from core.storage_url import s3_storage_options, s3_transfer_config

BUCKET = "evalstudio-test"
CONTENT = b'{"id": "s3-1", "input": "q"}\n{"id": "s3-2", "output": "o"}\n{"id": "s3-3", "trial": "x"}\n'


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def bucket(s3_endpoint: str, settings, tmp_path: Path, monkeypatch):
    """The default storage is the bucket, configured from a storage URL as the environment would give it; the
    credentials come from the AWS_* environment, as boto3 reads them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    settings.MEDIA_ROOT = tmp_path / "media"
    options = s3_storage_options(f"s3://{BUCKET}/uploads?endpoint_url={s3_endpoint}&region=us-east-1")
    options["transfer_config"] = s3_transfer_config()  # as settings.py adds it
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    yield client
    for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        client.delete_object(Bucket=BUCKET, Key=item["Key"])
    client.delete_bucket(Bucket=BUCKET)


def _keys(client) -> list[str]:
    return [item["Key"] for item in client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


@pytest.mark.django_db
def test_an_upload_is_stored_in_the_bucket_and_not_on_local_disk(bucket, project, expert, settings):
    job = import_job_create(project=project, user=expert, upload=SimpleUploadedFile("day.jsonl", CONTENT))
    assert job.file_path.startswith("imports/acme/") and job.file_path.endswith(".jsonl")
    assert _keys(bucket) == [f"uploads/{job.file_path}"]
    assert bucket.get_object(Bucket=BUCKET, Key=f"uploads/{job.file_path}")["Body"].read() == CONTENT
    assert not Path(settings.MEDIA_ROOT).exists()


@pytest.mark.django_db
def test_a_failed_job_row_leaves_no_object_behind(bucket, project, expert, monkeypatch):
    def fail(**_kwargs: object) -> None:
        raise RuntimeError("broker refused")

    monkeypatch.setattr("annotation.uploads.run_enqueue", fail)
    with pytest.raises(RuntimeError):
        import_job_create(project=project, user=expert, upload=SimpleUploadedFile("day.jsonl", CONTENT))
    assert _keys(bucket) == []
    assert not ImportJob.objects.exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_browser_upload_is_imported_by_the_worker_from_the_bucket(
    bucket, celery_worker, project, expert_client, settings
):
    file = SimpleUploadedFile("traces.jsonl", CONTENT, content_type="application/octet-stream")
    response = expert_client.post(reverse("import_upload", args=["acme"]), {"file": file})
    assert response.status_code == 302
    job = ImportJob.objects.get()
    deadline = time.monotonic() + 30
    while not job.is_finished and time.monotonic() < deadline:
        time.sleep(0.05)
        job.refresh_from_db()
    assert (job.status, job.error) == ("done", "")
    assert (job.created_count, job.rejected_count) == (2, 1)
    assert job.bytes_done == job.bytes_total == len(CONTENT)
    assert set(Trace.objects.filter(project=project).values_list("external_id", flat=True)) == {"s3-1", "s3-2"}
    # Read from the bucket, then deleted from it; nothing was ever written to local disk.
    assert _keys(bucket) == []
    assert not default_storage.exists(job.file_path)
    assert not Path(settings.MEDIA_ROOT).exists()


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_an_upload_gone_from_the_bucket_fails_the_job_with_a_clear_reason(bucket, celery_worker, project, expert):
    from annotation.ingest import import_job_execute

    job = ImportJob.objects.create(
        project=project, user=expert, file_name="t.jsonl", file_path="imports/acme/missing.jsonl", status="running"
    )
    job = import_job_execute(job=job)
    assert (job.status, job.error) == ("failed", "the uploaded file is gone; upload it again")


@pytest.mark.django_db
def test_export_traces_to_storage_writes_the_export_into_the_bucket(bucket, project):
    from django.core.management import call_command

    from tests.factories import make_trace

    make_trace(project=project, external_id="e-1")
    make_trace(project=project, external_id="e-2")
    call_command("export_traces", "--project", "acme", "--to-storage", "exports/acme.jsonl")
    body = bucket.get_object(Bucket=BUCKET, Key="uploads/exports/acme.jsonl")["Body"].read().decode()
    assert [json.loads(line)["id"] for line in body.splitlines()] == ["e-1", "e-2"]
    # A second export never overwrites the first: the storage picks another name and the command prints it.
    call_command("export_traces", "--project", "acme", "--to-storage", "exports/acme.jsonl")
    assert len([k for k in _keys(bucket) if k.startswith("uploads/exports/acme")]) == 2


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://bucket/x", "must start with s3://"),
        ("s3:///prefix", "names no bucket"),
        ("s3://bucket?region=", "option 'region' is empty"),
        ("s3://bucket?colour=blue", "unknown option 'colour'"),
        ("s3://bucket?endpoint_url=minio:9000", "endpoint_url must be an http(s) URL"),
        ("s3://onlykey@bucket", "ACCESS_KEY:SECRET_KEY@"),
        ("s3://b?addressing_style=sideways", "addressing_style must be path, virtual or auto"),
    ],
)
def test_a_bad_storage_url_is_explained(url, message):
    with pytest.raises(ValueError, match="EVALSTUDIO_STORAGE_URL") as caught:
        s3_storage_options(url)
    assert message in str(caught.value)


def test_a_storage_url_gives_bucket_prefix_endpoint_region_and_decoded_credentials():
    options = s3_storage_options(
        "s3://AKIA%2Fkey:s3cr%2Bt@evalstudio/team/uploads/?endpoint_url=http://minio:9000&region=eu-west-1"
        "&addressing_style=path"
    )
    assert options["bucket_name"] == "evalstudio" and options["location"] == "team/uploads"
    assert (options["access_key"], options["secret_key"]) == ("AKIA/key", "s3cr+t")
    assert (options["endpoint_url"], options["region_name"], options["addressing_style"]) == (
        "http://minio:9000",
        "eu-west-1",
        "path",
    )
    assert options["default_acl"] is None and options["file_overwrite"] is False
