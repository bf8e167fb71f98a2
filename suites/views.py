"""The golden set in the browser: the panel on the review page, the golden-set page with its version history and
snapshots, bulk removal, and the JSONL export of any version.

Every view starts with `get_project_for_user` (404 for outsiders). Experts and engineers change the set
(`Permission.EDIT_GOLDEN_SET`); viewers see it read-only and get 403 on a write.
"""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header, urlencode
from django.views.decorators.http import require_GET, require_POST

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.models import Criterion, Trace
from annotation.queue import QueueParams
from annotation.services import DomainError
from annotation.trace_format import loads
from suites.floors import suite_floor_set
from suites.golden import (
    golden_add,
    golden_current_version,
    golden_jsonl,
    golden_panel_state,
    golden_reference_set,
    golden_remove,
    golden_remove_by_ids,
    reference_history,
)
from suites.models import GoldenEntry
from suites.selectors import golden_history_page, golden_members_page

PANEL_TEMPLATE = "suites/_golden_panel.html"
MEMBERS_PER_PAGE = 50
VERSIONS_PER_PAGE = 20
# A bulk removal names its traces in the form; more than a page's worth is not something the page can send.
MAX_BULK = 1000
MAX_COMMENT_CHARS = 2000


class GoldenAddForm(forms.Form):
    reason = forms.ChoiceField(choices=GoldenEntry.Reason.choices)
    comment = forms.CharField(required=False, max_length=MAX_COMMENT_CHARS, strip=True)


def _positive_int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) < 10 else None


# --- the panel on the review page ---------------------------------------------------------------------------------


def _panel_response(
    request: HttpRequest, access: ProjectAccess, trace: Trace, params: QueueParams, error: str = ""
) -> HttpResponse:
    """htmx: the panel alone (200 even on an error, which the panel shows); without JS: back to the trace page."""
    if not request.htmx:
        if error:
            messages.error(request, error)
        return redirect(reverse("trace_detail", args=[access.project.slug, trace.external_id]) + params.querystring)
    context = {
        "project": access.project,
        "access": access,
        "trace": trace,
        "qs": params.querystring,
        "golden_panel": golden_panel_state(trace=trace),
        "golden_error": error,
    }
    return render(request, PANEL_TEMPLATE, context)


@login_required
@require_POST
def golden_trace_add(request: HttpRequest, slug: str, trace_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.EDIT_GOLDEN_SET)
    trace = access.get_object_or_404(Trace, pk=trace_id)
    params = QueueParams.from_query(request.GET)
    form = GoldenAddForm(request.POST)
    if not form.is_valid():
        error = "; ".join(f"{name}: {message}" for name, errors in form.errors.items() for message in errors)
        return _panel_response(request, access, trace, params, error=error)
    try:
        golden_add(
            project=access.project,
            traces=[trace],
            reason=form.cleaned_data["reason"],
            comment=form.cleaned_data["comment"],
            user=request.user,
        )
    except DomainError as exc:
        return _panel_response(request, access, trace, params, error=str(exc))
    return _panel_response(request, access, trace, params)


@login_required
@require_POST
def golden_trace_remove(request: HttpRequest, slug: str, trace_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.EDIT_GOLDEN_SET)
    trace = access.get_object_or_404(Trace, pk=trace_id)
    golden_remove(project=access.project, traces=[trace], user=request.user)
    return _panel_response(request, access, trace, QueueParams.from_query(request.GET))


# --- the golden-set page ------------------------------------------------------------------------------------------


@login_required
@require_GET
def golden_set(request: HttpRequest, slug: str) -> HttpResponse:
    """The current members (or a past version's, read-only with `?version=N`), filtered by reason, a page at a
    time (keyset on the entry id, newest first), and the version history."""
    access = get_project_for_user(request, slug)
    project = access.project
    current = golden_current_version(project=project)
    requested = request.GET.get("version")
    version = _positive_int(requested)
    if requested and (version is None or version > current):
        raise Http404(f"The golden set of {project.slug} has versions 1 to {current}, not {requested}.")
    number = version or current
    reason = request.GET.get("reason", "")
    if reason and reason not in GoldenEntry.Reason.values:
        reason = ""
    after = _positive_int(request.GET.get("after"))
    members = golden_members_page(project=project, version=number, reason=reason, after=after, size=MEMBERS_PER_PAGE)
    next_after = members.next_after
    history = golden_history_page(
        project=project,
        shown=number,
        before=_positive_int(request.GET.get("versions_before")),
        size=VERSIONS_PER_PAGE,
    )
    older_versions = history.older_than

    base = {"version": number} if version and version != current else {}
    context: dict[str, Any] = {
        "project": project,
        "access": access,
        "current": current,
        "number": number,
        "is_snapshot": bool(version) and version != current,
        "shown": history.shown,
        "members": members.members,
        "reason": reason,
        "reasons": GoldenEntry.Reason.choices,
        "next_query": urlencode({**base, **({"reason": reason} if reason else {}), "after": next_after})
        if next_after
        else "",
        "older_versions_query": urlencode({**base, "versions_before": older_versions}) if older_versions else "",
        "history": history.versions,
        "can_edit": access.can(Permission.EDIT_GOLDEN_SET) and not (bool(version) and version != current),
    }
    return render(request, "suites/golden_set.html", context)


@login_required
@require_POST
def golden_bulk_remove(request: HttpRequest, slug: str) -> HttpResponse:
    """Takes the ticked traces out of the set in one new version."""
    access = get_project_for_user(request, slug, Permission.EDIT_GOLDEN_SET)
    ids = [int(value) for value in request.POST.getlist("trace") if value.isdigit()][:MAX_BULK]
    removal = golden_remove_by_ids(project=access.project, trace_ids=ids, user=request.user)
    if not removal.traces:
        messages.info(request, "Tick the traces to remove first.")
    elif removal.changed:
        count = removal.traces
        messages.success(request, f"Removed {count} trace{'s' if count != 1 else ''}: now v{removal.version}.")
    return redirect("golden_set", slug=slug)


@login_required
@require_GET
def golden_export(request: HttpRequest, slug: str, version: int) -> StreamingHttpResponse:
    """One version as JSONL (the trace format plus a `golden` object per line), streamed; any member."""
    project = get_project_for_user(request, slug).project
    if version < 1:
        raise Http404("Golden set versions start at 1.")
    try:
        lines = golden_jsonl(project=project, version=version)
    except DomainError as exc:
        raise Http404(str(exc)) from None
    response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = content_disposition_header(
        as_attachment=True, filename=f"{project.slug}-golden-v{version}.jsonl"
    )
    # Traces are the team's own data: no shared cache may keep a copy.
    response["Cache-Control"] = "private, no-store"
    return response


# --- a golden entry's reference (its known-good answer) ----------------------------------------------------------

# A known-good answer is a sentence or a small JSON document; a pasted book is a mistake.
MAX_REFERENCE_CHARS = 100_000


class ReferenceForm(forms.Form):
    reference = forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 8}))
    as_json = forms.BooleanField(required=False, label="Read as JSON")

    def clean_reference(self) -> str:
        text = self.cleaned_data["reference"]
        if len(text) > MAX_REFERENCE_CHARS:
            raise forms.ValidationError(f"at most {MAX_REFERENCE_CHARS:,} characters, got {len(text):,}")
        return text

    def value(self) -> Any:
        """The reference the form gives: None (cleared) for an empty box, JSON when asked, else the text."""
        text = self.cleaned_data["reference"]
        if not text.strip():
            return None
        if not self.cleaned_data["as_json"]:
            return text.strip()
        try:
            return loads(text)
        except ValueError as exc:
            raise DomainError(f"reference: not valid JSON — {exc}") from None


def _reference_initial(value: Any) -> dict[str, Any]:
    if value is None:
        return {"reference": "", "as_json": False}
    if isinstance(value, str):
        return {"reference": value, "as_json": False}
    return {"reference": json.dumps(value, ensure_ascii=False, indent=2), "as_json": True}


@login_required
def golden_reference_edit(request: HttpRequest, slug: str, trace_id: int) -> HttpResponse:
    """A golden entry's known-good answer: the form (GET), or set / clear it (POST). Only those who change the
    golden set (the expert and engineers); a trace outside the current set is a 404."""
    access = get_project_for_user(request, slug, Permission.EDIT_GOLDEN_SET)
    trace = access.get_object_or_404(Trace, pk=trace_id)
    entry = GoldenEntry.objects.filter(trace=trace, removed_in=None, golden_set__project=access.project).first()
    if entry is None:
        raise Http404(f"{trace.external_id} is not in the current golden set.")
    error = ""
    if request.method == "POST":
        form = ReferenceForm(request.POST)
        if form.is_valid():
            try:
                changed = golden_reference_set(
                    project=access.project, trace=trace, reference=form.value(), user=request.user
                )
            except DomainError as exc:
                error = str(exc)
            else:
                if changed:
                    cleared = trace.reference is None
                    messages.success(request, f"{trace.external_id}: reference {'cleared' if cleared else 'saved'}.")
                else:
                    messages.info(request, f"{trace.external_id}: the reference is unchanged.")
                return redirect("golden_reference_edit", slug=slug, trace_id=trace.pk)
        else:
            error = "; ".join(f"{name}: {message}" for name, errors in form.errors.items() for message in errors)
    elif request.method == "GET":
        form = ReferenceForm(initial=_reference_initial(trace.reference))
    else:
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    context = {
        "project": access.project,
        "access": access,
        "trace": trace,
        "entry": entry,
        "form": form,
        "form_error": error,
        "history": reference_history(trace=trace),
        "current": _reference_initial(trace.reference)["reference"],
    }
    return render(request, "suites/golden_reference.html", context, status=400 if error else 200)


@login_required
@require_POST
def suite_floor_update(request: HttpRequest, slug: str, criterion_id: int) -> HttpResponse:
    """Sets or clears a criterion's regression-suite floor from the panel on the criterion page."""
    access = get_project_for_user(request, slug, Permission.EDIT_CRITERIA)
    criterion = access.get_object_or_404(Criterion.objects.all(), pk=criterion_id)
    raw = request.POST.get("min_pass_rate", "").strip()
    try:
        floor = float(raw) if raw else None
        suite_floor_set(criterion=criterion, min_pass_rate=floor)
    except ValueError:
        messages.error(request, f"The regression-suite floor is a pass rate from 0 to 1, e.g. 0.7; got {raw!r}.")
    except DomainError as exc:
        messages.error(request, str(exc))
    else:
        if floor is None:
            messages.success(request, f"“{criterion.name}” has no regression-suite floor now.")
        else:
            messages.success(request, f"Releases must now pass “{criterion.name}” at least {floor:.0%} of the time.")
    return redirect("criterion_edit", slug=slug, criterion_id=criterion.pk)
