"""The one place that decides who may see and do what in a project."""

from __future__ import annotations

from dataclasses import dataclass

from django.http import Http404, HttpRequest

from annotation.models import Project, Role
from annotation.selectors import project_get_for_user, project_role


@dataclass(frozen=True)
class ProjectAccess:
    project: Project
    role: str

    @property
    def is_expert(self) -> bool:
        """Only the expert's labels are ground truth, so only the expert may label."""
        return self.role == Role.EXPERT

    @property
    def can_ingest(self) -> bool:
        return self.role in {Role.EXPERT, Role.ENGINEER}

    @property
    def can_code(self) -> bool:
        """Edit the codebook and code notes to failure modes; viewers only browse the taxonomy."""
        return self.role in {Role.EXPERT, Role.ENGINEER}


def get_project_for_user(request: HttpRequest, slug: str) -> ProjectAccess:
    """The project and the user's role in it; 404 for outsiders so project slugs do not leak."""
    project = project_get_for_user(user=request.user, slug=slug)
    if project is None:
        raise Http404("No such project")
    role = project_role(project=project, user=request.user)
    if role is None:
        raise Http404("No such project")
    return ProjectAccess(project=project, role=role)
