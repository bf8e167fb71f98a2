# Being written by the review-page helper; see annotation/urls.py for the routes it serves.
from __future__ import annotations

from django.http import HttpRequest, HttpResponse


def _todo(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
    raise NotImplementedError


review_queue = trace_list = trace_detail = trace_next = trace_previous = trace_mark_reviewed = _todo
label_save = note_add = note_edit = note_delete = _todo
