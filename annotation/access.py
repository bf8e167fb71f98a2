"""The one place that decides who may see and do what in a project, for pages and for API routes.

A member's role (expert, engineer, viewer), or for API routes the project's bearer token, grants the permissions of
the table `PERMISSIONS`, which also holds the 403 message for each. Outsiders never learn that a project exists:
every page and route of it answers them 404, as for a missing project, and an object of another project is a 404 too.

- Pages: `access = get_project_for_user(request, slug, Permission.LABEL)` (the permission defaults to VIEW), or
  `access.require(Permission.LABEL)` when only some requests need it (a POST); `access.can(...)` to choose what to
  show, `access.get_object_or_404(Trace, pk=...)` for an object of the project; templates test `access.may.label`
  (an unknown permission name there is an error, not a silent no).
- API routes (`auth=API_AUTH`): `api_access(request, slug, Permission.VIEW)` or, for a route named by an object's id,
  `api_object(request, JudgeRun.objects, run_id, Permission.VIEW, via=..., missing=...)`; each returns the access (or
  the object) or the error response to return as it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import reduce
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja.security import HttpBearer, django_auth

from annotation.models import ApiToken, Project, Role
from annotation.selectors import project_get_for_user, project_role

M = TypeVar("M", bound=Model)


class Permission(StrEnum):
    """What a caller may do in a project; the values are the names templates use (`access.may.edit_codebook`)."""

    VIEW = "view"
    ADD_TRACES = "add_traces"
    LABEL = "label"
    EDIT_CRITERIA = "edit_criteria"
    EDIT_CODEBOOK = "edit_codebook"
    CREATE_SESSIONS = "create_sessions"
    EDIT_GOLDEN_SET = "edit_golden_set"
    EDIT_JUDGES = "edit_judges"
    RUN_JUDGES = "run_judges"
    PROMOTE_JUDGES = "promote_judges"
    SET_PROMOTION_BAR = "set_promotion_bar"
    RUN_SUITE = "run_suite"
    EDIT_ALERT_RULES = "edit_alert_rules"
    SET_SAMPLING_RATE = "set_sampling_rate"
    GRADE_TRIALS = "grade_trials"
    MANAGE_MEMBERS = "manage_members"


@dataclass(frozen=True)
class Rule:
    roles: frozenset[str]
    denied: str  # the 403 message for a member without the permission
    token: bool = False  # whether the project's API token has it (tokens are for CI and production apps)


MEMBERS = frozenset(Role.values)
TEAM = frozenset({Role.EXPERT, Role.ENGINEER})
# Only the expert's labels are ground truth, and the bars that decide on them are the expert's to set.
EXPERT = frozenset({Role.EXPERT})

PERMISSIONS: dict[Permission, Rule] = {
    Permission.VIEW: Rule(MEMBERS, "Only members can see this project", token=True),
    Permission.ADD_TRACES: Rule(
        TEAM, "Viewers cannot add traces; ask the project's expert for the engineer role", token=True
    ),
    Permission.LABEL: Rule(
        EXPERT, "Only the project's expert labels traces and marks them reviewed; their labels are the ground truth"
    ),
    Permission.EDIT_CRITERIA: Rule(TEAM, "Only the expert and engineers can change criteria"),
    Permission.EDIT_CODEBOOK: Rule(
        TEAM, "Only the expert and engineers can change the codebook and code notes; viewers browse the taxonomy"
    ),
    Permission.CREATE_SESSIONS: Rule(TEAM, "Viewers cannot create review sessions"),
    Permission.EDIT_GOLDEN_SET: Rule(TEAM, "Only the expert and engineers can change the golden set; viewers see it"),
    Permission.EDIT_JUDGES: Rule(TEAM, "Only the expert and engineers can change judges; viewers see them"),
    Permission.RUN_JUDGES: Rule(TEAM, "Only the expert and engineers can run judges; viewers see the results"),
    Permission.PROMOTE_JUDGES: Rule(
        TEAM, "Only the expert and engineers can promote judges; viewers see the promotions"
    ),
    Permission.SET_PROMOTION_BAR: Rule(EXPERT, "Only the project's expert sets the promotion bar"),
    Permission.RUN_SUITE: Rule(
        TEAM, "Viewers cannot run the suite; ask the project's expert for the engineer role", token=True
    ),
    Permission.EDIT_ALERT_RULES: Rule(TEAM, "Only the expert and engineers can change alert rules"),
    Permission.SET_SAMPLING_RATE: Rule(EXPERT, "Only the project's expert changes the sampling rate"),
    Permission.GRADE_TRIALS: Rule(
        TEAM, "Only the expert and engineers can create graders and grade; viewers see the results"
    ),
    Permission.MANAGE_MEMBERS: Rule(EXPERT, "Only the project's expert invites people and changes members' roles"),
}
TOKEN_DENIED = "A project's API token cannot do this; sign in as a member with the right role"


@dataclass(frozen=True)
class ProjectAccess:
    """A caller's access to one project: a member (`role`, `user`) or, on API routes, the project's `token`."""

    project: Project
    role: str | None = None
    user: AbstractBaseUser | None = None
    token: ApiToken | None = None

    def can(self, permission: Permission) -> bool:
        rule = PERMISSIONS[permission]
        return rule.token if self.token is not None else self.role in rule.roles

    def denied_message(self, permission: Permission) -> str:
        return TOKEN_DENIED if self.token is not None else PERMISSIONS[permission].denied

    def require(self, permission: Permission) -> None:
        """403 with the permission's message unless the caller has it."""
        if not self.can(permission):
            raise PermissionDenied(self.denied_message(permission))

    @property
    def may(self) -> Grants:
        return Grants(self)

    def get_object_or_404(self, queryset: type[M] | QuerySet[M], *, via: str = "project", **lookups: Any) -> M:
        """The object of this project matching `lookups`; another project's is a 404, as a missing one. `via` is
        the lookup from the object to its project when it is not a direct `project` (`version__judge__project`)."""
        return get_object_or_404(queryset, **{via: self.project}, **lookups)


class Grants:
    """`access.may.<permission>` for templates, which cannot pass an argument to `can`."""

    def __init__(self, access: ProjectAccess) -> None:
        self._access = access

    def __getitem__(self, name: str) -> bool:
        try:
            permission = Permission(name)
        except ValueError:
            # Not a KeyError: the template engine would swallow it and hide whatever the typo guards.
            raise ImproperlyConfigured(f"No permission {name!r}; see annotation.access.Permission") from None
        return self._access.can(permission)


def get_project_for_user(request: HttpRequest, slug: str, permission: Permission = Permission.VIEW) -> ProjectAccess:
    """The project and the logged-in user's role in it: 404 for outsiders so project slugs do not leak, then 403
    with the permission's message for a member without `permission`."""
    project = project_get_for_user(user=request.user, slug=slug)
    role = None if project is None else project_role(project=project, user=request.user)
    if project is None or role is None:
        raise Http404("No such project")
    access = ProjectAccess(project=project, role=role, user=request.user)
    access.require(permission)
    return access


# --- API routes ----------------------------------------------------------------------------------------------------


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>`: a project-scoped ApiToken, looked up by its hash."""

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken | None:
        api_token = ApiToken.objects.filter(token_hash=ApiToken.hash(token)).first()
        if api_token is None:
            return None
        ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=timezone.now())
        return api_token


# Token first (CI and production apps), then the browser session, whose POSTs must carry the CSRF token. When neither
# authenticates, django-ninja answers 401 {"detail": "Unauthorized"} before the route runs.
API_AUTH = [BearerToken(), django_auth]

NO_SUCH_PROJECT = "No such project"
OTHER_PROJECTS_TOKEN = "This token belongs to another project"


def _error(status: int, detail: str) -> HttpResponse:
    # The bytes and content type django-ninja gives a `{"detail": ...}` body of its own.
    return JsonResponse({"detail": detail}, status=status, content_type="application/json; charset=utf-8")


def _caller(request: HttpRequest, project: Project | None) -> ProjectAccess | None:
    """The caller's access to `project`, whatever it may do there; None when it is not the project's token or a
    member's session (or there is no project)."""
    auth = request.auth  # type: ignore[attr-defined]
    if project is None:
        return None
    if isinstance(auth, ApiToken):
        return ProjectAccess(project=project, token=auth) if auth.project_id == project.pk else None
    role = project_role(project=project, user=auth)
    return None if role is None else ProjectAccess(project=project, role=role, user=auth)


def api_access(request: HttpRequest, project: Project | str, permission: Permission) -> ProjectAccess | HttpResponse:
    """The caller's access to `project` (or the project of that slug) when it has `permission`, else the error
    response `{"detail": ...}` to return: 404 for a missing project and for a session that is not a member (so
    slugs do not leak), 403 for another project's token and for a caller without the permission.

    The caller is `request.auth` as API_AUTH found it. The next API contract (401 with `WWW-Authenticate: Bearer`
    for a missing or bad token, one answer for another project's token whatever the slug) changes API_AUTH and the
    answers below, and no route.
    """
    if isinstance(project, str):
        project = Project.objects.filter(slug=project).first()
    access = _caller(request, project)
    if access is None:
        if project is not None and isinstance(request.auth, ApiToken):  # type: ignore[attr-defined]
            return _error(403, OTHER_PROJECTS_TOKEN)
        return _error(404, NO_SUCH_PROJECT)
    if not access.can(permission):
        return _error(403, access.denied_message(permission))
    return access


def api_object(
    request: HttpRequest, queryset: QuerySet[M], pk: int, permission: Permission, *, via: str = "project", missing: str
) -> M | HttpResponse:
    """The object `pk` of `queryset` when the caller has `permission` in its project (reached by the lookup `via`),
    else the error response: 404 `missing` alike for a missing object and for one the caller cannot see (another
    project's token, a session that is not a member), 403 for a member or token without the permission."""
    found = queryset.select_related(via).filter(pk=pk).first()
    access = _caller(request, None if found is None else reduce(getattr, via.split("__"), found))
    if found is None or access is None:
        return _error(404, missing)
    if not access.can(permission):
        return _error(403, access.denied_message(permission))
    return found
