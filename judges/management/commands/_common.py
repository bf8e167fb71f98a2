"""Lookups shared by the judge commands, each failing with a CommandError that names what is missing."""

from __future__ import annotations

from django.core.management.base import CommandError

from annotation.models import Project
from judges.models import Judge


def project_by_slug(slug: str) -> Project:
    project = Project.objects.filter(slug=slug).first()
    if project is None:
        raise CommandError(f"--project: no project {slug!r}")
    return project


def judge_by_name(project: Project, name: str) -> Judge:
    judge = Judge.objects.filter(project=project, name=name).select_related("criterion").first()
    if judge is None:
        names = ", ".join(Judge.objects.filter(project=project).values_list("name", flat=True)) or "none yet"
        raise CommandError(f"--judge: project {project.slug!r} has no judge {name!r} (judges: {names})")
    return judge
