"""Browser uploads of trace files: the file is checked and stored, and an ImportJob is queued for the worker, which
imports it with progress (annotation.ingest.import_job_execute)."""

from __future__ import annotations

import uuid
from pathlib import PurePath

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.template.defaultfilters import filesizeformat

from annotation.ingest import FORMATS, ON_CONFLICT_CHOICES
from annotation.models import ImportJob, Project
from annotation.services import DomainError
from core.runs import run_enqueue

# Extension → reader. Anything else is refused before it is stored.
UPLOAD_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def import_job_create(
    *,
    project: Project,
    user: AbstractBaseUser,
    upload: UploadedFile,
    on_conflict: str = "skip",
    file_format: str = "",
) -> ImportJob:
    """Store the uploaded file and queue its import. The format is `file_format` when given (one of
    `annotation.ingest.FORMATS`: peers' exports are named, their extensions say nothing of their shape), else the
    extension's. DomainError, with nothing stored, for a file of another kind, an empty or too large one, or an
    unknown `on_conflict`."""
    limit = settings.EVALSTUDIO_MAX_UPLOAD_BYTES
    suffix = PurePath(upload.name or "").suffix.lower()
    if file_format and file_format not in FORMATS:
        raise DomainError(f"Format must be one of {', '.join(FORMATS)}; got {file_format!r}.")
    if not file_format and suffix not in UPLOAD_FORMATS:
        raise DomainError(
            f"{upload.name}: only .jsonl, .ndjson, .csv and .parquet files can be imported as the trace format; "
            "choose the format for a file exported by another tool (OTLP JSON, Phoenix, Langfuse)."
        )
    if upload.size > limit:
        raise DomainError(f"{upload.name} is too large: the limit is {filesizeformat(limit)}.")
    if upload.size == 0:
        raise DomainError(f"{upload.name} is empty.")
    if on_conflict not in ON_CONFLICT_CHOICES:
        raise DomainError(f"On conflict must be one of {', '.join(ON_CONFLICT_CHOICES)}.")
    stored = default_storage.save(f"imports/{project.slug}/{uuid.uuid4().hex}{suffix}", upload)
    try:
        with transaction.atomic():
            job = ImportJob.objects.create(
                project=project,
                user=user,
                file_name=PurePath(upload.name).name[:255],
                # The storage's name, not a filesystem path: object storage has none, and the worker may run elsewhere.
                file_path=stored,
                file_format=file_format or UPLOAD_FORMATS[suffix],
                on_conflict=on_conflict,
                bytes_total=upload.size,
            )
            run_enqueue(run=job)
    except BaseException:
        # Nothing half-written: without its job row, the stored file would never be imported or deleted.
        default_storage.delete(stored)
        raise
    return job
