"""Browser uploads: the file is saved, an ImportJob is queued for the worker, and its page polls for progress."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.access import Permission, get_project_for_user
from annotation.models import ImportJob
from annotation.services import DomainError
from annotation.uploads import import_job_create
from core.runs import WAITS_FOR_WORKER, run_waits_for_worker


def _refuse(request: HttpRequest, slug: str, message: str) -> HttpResponse:
    messages.error(request, message)
    return redirect("project_detail", slug)


class _SizeLimitHandler(FileUploadHandler):
    """Drops a file as soon as it passes the upload limit, instead of spooling gigabytes to disk first."""

    def __init__(self, request: HttpRequest, limit: int) -> None:
        super().__init__(request)
        self.limit = limit
        self.exceeded = False

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.limit:
            self.exceeded = True
            raise SkipFile
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None


@csrf_exempt  # only to install the handler before the CSRF check parses the body; checked right after
@login_required
@require_POST
def import_upload(request: HttpRequest, slug: str) -> HttpResponse:
    limiter = _SizeLimitHandler(request, settings.EVALSTUDIO_MAX_UPLOAD_BYTES)
    request.upload_handlers.insert(0, limiter)
    return _import_upload(request, slug, limiter)


@csrf_protect
def _import_upload(request: HttpRequest, slug: str, limiter: _SizeLimitHandler) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.ADD_TRACES)
    limit = limiter.limit
    upload = request.FILES.get("file")
    if limiter.exceeded:
        return _refuse(request, slug, f"The file is too large: the limit is {filesizeformat(limit)}.")
    if upload is None:
        return _refuse(request, slug, "Choose a file to import.")
    try:
        job = import_job_create(
            project=access.project,
            user=request.user,
            upload=upload,
            on_conflict=request.POST.get("on_conflict") or "skip",
            file_format=request.POST.get("file_format", ""),
        )
    except DomainError as exc:
        return _refuse(request, slug, str(exc))
    if run_waits_for_worker(job):
        messages.warning(request, WAITS_FOR_WORKER)
    return redirect("import_detail", slug, job.pk)


@login_required
@require_GET
def import_detail(request: HttpRequest, slug: str, job_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    job = access.get_object_or_404(ImportJob, pk=job_id)
    context = {"project": access.project, "access": access, "job": job}
    if request.htmx:
        response = render(request, "annotation/import_detail.html#progress", context)
        if job.is_finished:
            # 286 tells htmx to swap in this final state and stop polling.
            return HttpResponseStopPolling(response.content)
        return response
    return render(request, "annotation/import_detail.html", context)
