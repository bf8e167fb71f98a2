"""Criteria: the pass/fail questions the expert labels and each judge answers. Created and edited here (or by
imported labels naming them); viewers read them on the project page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from annotation.access import Permission, get_project_for_user
from annotation.criterion_names import generic_quality
from annotation.forms import CriterionForm
from annotation.models import Criterion
from annotation.panels import panels_render
from annotation.recalibration import labels_under_earlier_definitions, recalibration_session_create
from annotation.selectors import criterion_definition_versions, criterion_failure_mode_choices
from annotation.services import DomainError, criterion_create, criterion_update

TEMPLATE = "annotation/criterion_form.html"


def _name_note(form: CriterionForm) -> dict[str, str | None]:
    """The vague quality the name on the form amounts to, for the note asking for a concrete definition."""
    return {"generic_name": generic_quality(str(form["name"].value() or ""))}


@login_required
def criterion_new(request: HttpRequest, slug: str) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.EDIT_CRITERIA)
    project = access.project
    modes = criterion_failure_mode_choices(project=project)
    if request.method == "POST":
        form = CriterionForm(request.POST, modes=modes)
        if form.is_valid():
            try:
                criterion = criterion_create(project=project, user=request.user, **form.cleaned_data)
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, f"Criterion “{criterion.name}” created.")
                return redirect("project_detail", slug=project.slug)
    else:
        # "Make a criterion" from a failure mode's page: prefilled from the mode.
        initial = {}
        mode = modes.filter(pk=request.GET.get("mode")).first() if request.GET.get("mode", "").isdigit() else None
        if mode is not None:
            initial = {"name": mode.name, "definition": mode.definition, "failure_mode": mode}
        form = CriterionForm(initial=initial, modes=modes)
    context = {"project": project, "access": access, "form": form, "criterion": None, **_name_note(form)}
    return render(request, TEMPLATE, context)


@login_required
def criterion_edit(request: HttpRequest, slug: str, criterion_id: int) -> HttpResponse:
    access = get_project_for_user(request, slug, Permission.EDIT_CRITERIA)
    project = access.project
    criterion = access.get_object_or_404(Criterion.objects.select_related("failure_mode"), pk=criterion_id)
    modes = criterion_failure_mode_choices(project=project, current=criterion.failure_mode)
    if request.method == "POST":
        form = CriterionForm(request.POST, modes=modes)
        if form.is_valid():
            try:
                before = criterion.version
                criterion = criterion_update(criterion=criterion, user=request.user, **form.cleaned_data)
            except DomainError as exc:
                form.add_error(None, str(exc))
            else:
                if criterion.version != before:
                    earlier = criterion.labels.filter(criterion_version__lt=criterion.version).count()
                    messages.success(
                        request,
                        f"Criterion “{criterion.name}” saved: its definition is now version {criterion.version}. "
                        f"{earlier} label{' was' if earlier == 1 else 's were'} made under an earlier definition.",
                    )
                    return redirect("criterion_edit", slug=project.slug, criterion_id=criterion.pk)
                messages.success(request, f"Criterion “{criterion.name}” saved.")
                return redirect("project_detail", slug=project.slug)
    else:
        form = CriterionForm(
            initial={
                "name": criterion.name,
                "definition": criterion.definition,
                "failure_mode": criterion.failure_mode,
            },
            modes=modes,
        )
    context = {"project": project, "access": access, "form": form, "criterion": criterion, **_name_note(form)}
    context["versions"] = criterion_definition_versions(criterion=criterion)
    context["earlier_labels"] = labels_under_earlier_definitions(criterion=criterion)
    context["may_recalibrate"] = access.can(Permission.CREATE_SESSIONS)
    context["panels"] = panels_render(slot="criterion", request=request, context=context)
    return render(request, TEMPLATE, context, status=400 if form.errors else 200)


@login_required
@require_POST
def criterion_recalibrate(request: HttpRequest, slug: str, criterion_id: int) -> HttpResponse:
    """Start a recalibration session of the criterion's labels made under an earlier definition."""
    access = get_project_for_user(request, slug, Permission.CREATE_SESSIONS)
    criterion = access.get_object_or_404(Criterion, pk=criterion_id)
    try:
        session = recalibration_session_create(criterion=criterion, created_by=request.user)
    except DomainError as exc:
        messages.error(request, str(exc))
        return redirect("criterion_edit", slug, criterion.pk)
    messages.success(
        request,
        f"Session “{session.name}” holds {session.size} labelled traces to label again blind under the new definition.",
    )
    return redirect("session_detail", slug, session.pk)
