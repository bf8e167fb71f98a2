"""Downloads of the failure taxonomy (modes with counts, notes with modes) and the codebook upload."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.template.defaultfilters import filesizeformat
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_http_methods

from annotation.access import Permission, get_project_for_user
from annotation.services import DomainError
from annotation.taxonomy_format import CODEBOOK_FORMATS, codebook_format_for
from annotation.taxonomy_io import (
    CONTENT_TYPES,
    EXPORT_FORMATS,
    codebook_import,
    export_filename,
    failure_modes_export,
    notes_export_csv,
    notes_export_json,
)

# A codebook is a few hundred modes; anything this large is the wrong file.
CODEBOOK_MAX_BYTES = 5_000_000


def _check_format(fmt: str) -> None:
    if fmt not in EXPORT_FORMATS:
        raise Http404(f"No export as {fmt!r}; choose csv or json")


def _attach(response: HttpResponse | StreamingHttpResponse, filename: str) -> None:
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    # Notes and definitions are the team's own data: no shared cache may keep a copy.
    response["Cache-Control"] = "private, no-store"


@login_required
@require_GET
def failure_modes_download(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    """Every failure mode with its counts and shares (the numbers of the failure-modes page); any member."""
    _check_format(fmt)
    project = get_project_for_user(request, slug).project
    response = HttpResponse(failure_modes_export(project=project, fmt=fmt), content_type=CONTENT_TYPES[fmt])
    _attach(response, export_filename(project, "failure-modes", fmt))
    return response


@login_required
@require_GET
def notes_download(request: HttpRequest, slug: str, fmt: str) -> StreamingHttpResponse:
    """Every note with its failure modes, streamed chunk by chunk; any member."""
    _check_format(fmt)
    project = get_project_for_user(request, slug).project
    pieces = notes_export_csv(project=project) if fmt == "csv" else notes_export_json(project=project)
    response = StreamingHttpResponse(pieces, content_type=CONTENT_TYPES[fmt])
    _attach(response, export_filename(project, "notes", fmt))
    return response


class CodebookUploadForm(forms.Form):
    file = forms.FileField(help_text="CSV with the columns name, definition — or a JSON list of such objects.")
    strict = forms.BooleanField(required=False, label="All or nothing: import nothing when any row is bad")

    def clean_file(self) -> object:
        upload = self.cleaned_data["file"]
        if upload.size > CODEBOOK_MAX_BYTES:
            raise forms.ValidationError(
                f"The file is {filesizeformat(upload.size)}; a codebook file is limited to "
                f"{filesizeformat(CODEBOOK_MAX_BYTES)}."
            )
        name = upload.name or ""
        if not name.lower().endswith(tuple(f".{fmt}" for fmt in CODEBOOK_FORMATS)):
            raise forms.ValidationError(f"“{name}” is neither a .csv nor a .json file.")
        return upload


@login_required
@require_http_methods(["GET", "POST"])
def codebook_upload(request: HttpRequest, slug: str) -> HttpResponse:
    """Upload a codebook (CSV or JSON): creates missing modes, updates definitions, lists each bad row."""
    access = get_project_for_user(request, slug)
    project = access.project
    form = CodebookUploadForm()
    report = None
    status = 200
    if request.method == "POST":
        access.require(Permission.EDIT_CODEBOOK)
        form = CodebookUploadForm(request.POST, request.FILES)
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                report = codebook_import(
                    project=project,
                    data=upload.read(),
                    fmt=codebook_format_for(upload.name),
                    actor=request.user,
                    strict=form.cleaned_data["strict"],
                )
            except DomainError as exc:
                form.add_error("file", str(exc))
        if not form.is_valid():
            status = 400
    context = {"project": project, "access": access, "form": form, "report": report}
    return render(request, "annotation/codebook_import.html", context, status=status)
