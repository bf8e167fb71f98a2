"""Suggested groupings: start a clustering of the uncoded notes, watch it, then accept, edit or reject each group."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseStopPolling

from annotation.access import Permission, ProjectAccess, get_project_for_user
from annotation.clustering import DEFAULT_DISTANCE_THRESHOLD, MAX_GROUPS
from annotation.coding_board import mode_choices
from annotation.models import Suggestion, SuggestionRun
from annotation.services import DomainError
from annotation.suggestions import (
    run_notices,
    suggestion_accept_edited,
    suggestion_for_review,
    suggestion_reject,
    suggestion_run_enqueue,
    suggestion_runs_recent,
    suggestions_for_review,
)
from core.llm_client import llm_configured
from core.runs import WAITS_FOR_WORKER, run_waits_for_worker

TEMPLATE = "annotation/suggestions.html"
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


def _page(request: HttpRequest, access: ProjectAccess, *, status: int = 200, **extra: Any) -> HttpResponse:
    project = access.project
    # The run on show is polled in place; listing it again here would freeze its status at page load.
    runs = suggestion_runs_recent(project=project, limit=RECENT_RUNS, exclude=extra.get("run"))
    context = {
        "project": project,
        "access": access,
        "form": extra.pop("form", None) or SuggestForm(initial={"seed": 0, "min_group_size": 2}),
        "llm_available": llm_configured(),
        "recent_runs": runs,
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
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
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
                if run_waits_for_worker(run):
                    messages.warning(request, WAITS_FOR_WORKER)
                return redirect("suggestion_run_detail", slug, run.pk)
    return _page(request, access, form=form, status=400)


def _run_context(access: ProjectAccess, run: SuggestionRun) -> dict[str, Any]:
    context: dict[str, Any] = {"run": run, "notices": run_notices(run)}
    if run.status == SuggestionRun.Status.DONE:
        context["suggestions"] = suggestions_for_review(run=run)
        context["modes"] = (
            mode_choices(project=access.project, limit=MODES_IN_PICKER) if access.can(Permission.EDIT_CODEBOOK) else []
        )
    return context


def _get_run(access: ProjectAccess, run_id: int) -> SuggestionRun:
    return access.get_object_or_404(SuggestionRun.objects.select_related("created_by"), pk=run_id)


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
    return access.get_object_or_404(
        Suggestion.objects.select_related("run__project"), via="run__project", pk=suggestion_id
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
    fresh = suggestion_for_review(run=run, suggestion_id=suggestion.pk)
    context = {
        "project": access.project,
        "access": access,
        "run": run,
        "s": fresh,
        "modes": mode_choices(project=access.project, limit=MODES_IN_PICKER),
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
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    suggestion = _get_suggestion(access, suggestion_id)
    try:
        kept = set(_int_list(request.POST.getlist("note"), "kept notes"))
        shown = set(_int_list(request.POST.getlist("shown"), "shown notes"))
        target = request.POST.get("target", "new")
        mode_id = None
        if target == "existing":
            raw_mode = request.POST.get("failure_mode", "")
            if not raw_mode.isdigit():
                raise DomainError("Choose the existing failure mode to add the notes to")
            mode_id = int(raw_mode)
        elif target != "new":
            raise DomainError(f"Unknown target {target!r}: choose a new mode or an existing one")
        outcome = suggestion_accept_edited(
            suggestion=suggestion,
            name=request.POST.get("name", ""),
            definition=request.POST.get("definition", ""),
            # Only listed notes had a checkbox; the ones beyond the list go along unless unchecked ones say otherwise.
            dropped_note_ids=shown - kept,
            failure_mode_id=mode_id,
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
    access = get_project_for_user(request, slug, Permission.EDIT_CODEBOOK)
    suggestion = _get_suggestion(access, suggestion_id)
    try:
        suggestion = suggestion_reject(suggestion=suggestion, actor=request.user)
    except DomainError as exc:
        return _card_response(request, access, suggestion, error=str(exc))
    return _card_response(request, access, suggestion, done=f"Rejected “{suggestion.name}”.")
