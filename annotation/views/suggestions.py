"""Suggested groupings: start a clustering of the uncoded notes, watch it, then accept, edit or reject each group."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Exists, OuterRef, Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.access import ProjectAccess, get_project_for_user
from annotation.clustering import DEFAULT_DISTANCE_THRESHOLD, MAX_GROUPS
from annotation.models import FailureMode, Note, NoteFailureMode, Suggestion, SuggestionRun
from annotation.services import DomainError
from annotation.suggestions import (
    llm_configured,
    naming_problem,
    run_notices,
    suggestion_accept,
    suggestion_reject,
    suggestion_run_enqueue,
)

TEMPLATE = "annotation/suggestions.html"
# Member notes listed per suggestion; the rest are counted and go along on acceptance.
SHOWN_NOTES = 50
RECENT_RUNS = 10
# The "add to existing mode" picker; a codebook is tens of modes, this only bounds a pathological one.
MODES_IN_PICKER = 500


class SuggestForm(forms.Form):
    target_groups = forms.IntegerField(
        required=False, min_value=1, max_value=MAX_GROUPS, label="Number of groups",
        help_text="Leave empty to cut by distance instead.",
    )  # fmt: skip
    distance_threshold = forms.FloatField(
        required=False, min_value=0.05, max_value=1.0, label="Distance threshold",
        help_text=f"Cosine distance, 0.05–1; higher makes bigger, looser groups. Default {DEFAULT_DISTANCE_THRESHOLD}.",
    )  # fmt: skip
    min_group_size = forms.IntegerField(required=False, initial=2, min_value=2, max_value=1_000, label="Smallest group")
    seed = forms.IntegerField(required=False, initial=0, min_value=0, max_value=2**31 - 1, label="Seed")
    use_llm = forms.BooleanField(required=False, label="Name groups with the LLM")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("target_groups") is not None and data.get("distance_threshold") is not None:
            raise forms.ValidationError("Give either a number of groups or a distance threshold, not both.")
        return data


def _require_coder(access: ProjectAccess) -> None:
    if not access.can_code:
        raise PermissionDenied("Only the expert and engineers can work on the codebook")


def _page(request: HttpRequest, access: ProjectAccess, *, status: int = 200, **extra: Any) -> HttpResponse:
    project = access.project
    runs = project.suggestion_runs.select_related("created_by").annotate(suggestion_count=Count("suggestions"))
    if extra.get("run") is not None:
        # The run on show is polled in place; listing it again here would freeze its status at page load.
        runs = runs.exclude(pk=extra["run"].pk)
    context = {
        "project": project,
        "access": access,
        "form": extra.pop("form", None) or SuggestForm(initial={"seed": 0, "min_group_size": 2}),
        "llm_available": llm_configured(),
        "recent_runs": runs.order_by("-created_at", "-id")[:RECENT_RUNS],
        **extra,
    }
    return render(request, TEMPLATE, context, status=status)


@login_required
@require_GET
def suggestion_home(request: HttpRequest, slug: str) -> HttpResponse:
    return _page(request, get_project_for_user(request, slug))


@login_required
@require_POST
def suggestion_run_create(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug)
    _require_coder(access)
    form = SuggestForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        if data["use_llm"] and not llm_configured():
            # A non-field error: without an endpoint the checkbox is not on the page to carry it.
            form.add_error(None, "No LLM endpoint is configured on this server (OPENAI_BASE_URL).")
        else:
            try:
                run = suggestion_run_enqueue(
                    project=access.project,
                    user=request.user,
                    seed=data["seed"] if data["seed"] is not None else 0,
                    distance_threshold=data["distance_threshold"],
                    target_groups=data["target_groups"],
                    min_group_size=data["min_group_size"] or 2,
                    use_llm=data["use_llm"],
                )
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                return redirect("suggestion_run_detail", slug, run.pk)
    return _page(request, access, form=form, status=400)


def _suggestions(run: SuggestionRun) -> QuerySet[Suggestion]:
    """The run's suggestions with their first notes and counts: a fixed number of queries however big the groups."""
    coded = NoteFailureMode.objects.filter(note_id=OuterRef("pk"))
    shown = (
        Note.objects.select_related("trace")
        .only("id", "text", "trace_id", "trace__external_id")
        .annotate(is_coded=Exists(coded))
        .order_by("id")[:SHOWN_NOTES]
    )
    return (
        run.suggestions.select_related("failure_mode", "decided_by")
        .annotate(note_total=Count("notes"))
        .prefetch_related(Prefetch("notes", queryset=shown, to_attr="shown_notes"))
        .order_by("position", "id")
    )


def _decorate(suggestions: list[Suggestion], run: SuggestionRun) -> list[Suggestion]:
    for suggestion in suggestions:
        suggestion.naming_problem = naming_problem(suggestion, run)
        suggestion.hidden_count = suggestion.note_total - len(suggestion.shown_notes)
    return suggestions


def _modes(access: ProjectAccess) -> QuerySet[FailureMode]:
    return FailureMode.objects.filter(project=access.project, retired_at=None).only("id", "name")[:MODES_IN_PICKER]


def _run_context(access: ProjectAccess, run: SuggestionRun) -> dict[str, Any]:
    context: dict[str, Any] = {"run": run, "notices": run_notices(run)}
    if run.status == SuggestionRun.Status.DONE:
        context["suggestions"] = _decorate(list(_suggestions(run)), run)
        context["modes"] = list(_modes(access)) if access.can_code else []
    return context


def _get_run(access: ProjectAccess, run_id: int) -> SuggestionRun:
    return get_object_or_404(SuggestionRun.objects.select_related("created_by"), project=access.project, pk=run_id)


@login_required
@require_GET
def suggestion_run_detail(request: HttpRequest, slug: str, run_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    run = _get_run(access, run_id)
    context = _run_context(access, run)
    if request.htmx:
        response = render(request, f"{TEMPLATE}#run", {"project": access.project, "access": access, **context})
        # 286 makes htmx swap in this final state and stop polling.
        return HttpResponseStopPolling(response.content) if run.is_finished else response
    return _page(request, access, **context)


def _get_suggestion(access: ProjectAccess, suggestion_id: int) -> Suggestion:
    return get_object_or_404(
        Suggestion.objects.select_related("run__project"), run__project=access.project, pk=suggestion_id
    )


def _card_response(
    request: HttpRequest, access: ProjectAccess, suggestion: Suggestion, *, error: str = "", done: str = ""
) -> HttpResponse:
    run = suggestion.run
    if not request.htmx:
        if error:
            messages.error(request, error)
        elif done:
            messages.success(request, done)
        return redirect("suggestion_run_detail", access.project.slug, run.pk)
    fresh = _decorate([_suggestions(run).get(pk=suggestion.pk)], run)[0]
    context = {
        "project": access.project,
        "access": access,
        "run": run,
        "s": fresh,
        "modes": list(_modes(access)),
        "card_error": error,
        "card_done": done,
    }
    # htmx swaps only 2xx by default; an error is shown inside the card, so it is a 200 too.
    return render(request, f"{TEMPLATE}#suggestion", context)


def _int_list(values: list[str], field: str) -> list[int]:
    try:
        return [int(value) for value in values]
    except ValueError:
        raise DomainError(f"The {field} list holds something that is not a note id") from None


@login_required
@require_POST
def suggestion_accept_view(request: HttpRequest, slug: str, suggestion_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    _require_coder(access)
    suggestion = _get_suggestion(access, suggestion_id)
    try:
        kept = set(_int_list(request.POST.getlist("note"), "kept notes"))
        shown = set(_int_list(request.POST.getlist("shown"), "shown notes"))
        # Only listed notes had a checkbox; the ones beyond the list go along unless unchecked ones say otherwise.
        dropped = shown - kept
        note_ids = [pk for pk in suggestion.notes.values_list("pk", flat=True) if pk not in dropped]
        target = request.POST.get("target", "new")
        mode = None
        if target == "existing":
            mode_id = request.POST.get("failure_mode", "")
            if not mode_id.isdigit():
                raise DomainError("Choose the existing failure mode to add the notes to")
            mode = FailureMode.objects.filter(project=access.project, pk=int(mode_id)).first()
            if mode is None:
                raise DomainError(f"There is no failure mode {mode_id} in this project")
        elif target != "new":
            raise DomainError(f"Unknown target {target!r}: choose a new mode or an existing one")
        outcome = suggestion_accept(
            suggestion=suggestion,
            name=request.POST.get("name", ""),
            definition=request.POST.get("definition", ""),
            note_ids=note_ids,
            failure_mode=mode,
            actor=request.user,
        )
    except DomainError as exc:
        return _card_response(request, access, suggestion, error=str(exc))
    done = f"Coded {outcome.assigned} note{'s' if outcome.assigned != 1 else ''} to “{outcome.failure_mode.name}”"
    if outcome.skipped:
        done += f"; {outcome.skipped} already coded meanwhile were left as they were"
    return _card_response(request, access, outcome.suggestion, done=done + ".")


@login_required
@require_POST
def suggestion_reject_view(request: HttpRequest, slug: str, suggestion_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug)
    _require_coder(access)
    suggestion = _get_suggestion(access, suggestion_id)
    try:
        suggestion = suggestion_reject(suggestion=suggestion, actor=request.user)
    except DomainError as exc:
        return _card_response(request, access, suggestion, error=str(exc))
    return _card_response(request, access, suggestion, done=f"Rejected “{suggestion.name}”.")
