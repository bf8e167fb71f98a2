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

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import reduce
from typing import Any, TypeVar

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer
from ninja.security import SessionAuth as NinjaSessionAuth

from annotation.models import ApiToken, Project, Role
from annotation.selectors import project_get_for_user, project_role
from core.api_errors import detail_response

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
    MANAGE_TOKENS = "manage_tokens"
    MANAGE_MEMBERS = "manage_members"
    MARK_GUARDRAILS = "mark_guardrails"


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
    # A token grants API access to the whole project; who holds one is the expert's decision.
    Permission.MANAGE_TOKENS: Rule(EXPERT, "Only the project's expert creates and revokes API tokens"),
    Permission.MANAGE_MEMBERS: Rule(EXPERT, "Only the project's expert invites people and changes members' roles"),
    # A guardrail blocks production answers inline: whether a check agrees closely enough with the expert to do that
    # is the expert's call, like the bars.
    Permission.MARK_GUARDRAILS: Rule(
        EXPERT, "Only the project's expert marks checks guardrail-ready and sets the guardrail bar"
    ),
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

# RFC 6750 section 3: the realm names the protection space; `error="invalid_token"` only when a token was sent.
WWW_AUTHENTICATE = 'Bearer realm="api"'
MISSING_CREDENTIALS = (
    "Authentication required: send the project's API token as 'Authorization: Bearer <token>' (or sign in)"
)
MALFORMED_HEADER = "The Authorization header must be 'Bearer <token>'"
INVALID_TOKEN = "Invalid token: no such API token"


class ApiUnauthorized(AuthenticationError):
    """401 for an API route: `token_sent` tells whether the caller sent a (bad) token, which RFC 6750 answers with
    `error="invalid_token"`, or nothing at all."""

    def __init__(self, message: str, *, token_sent: bool) -> None:
        super().__init__(401, message)
        self.token_sent = token_sent


def unauthorized_response(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    """The API's answer to every authentication failure (registered on the NinjaAPI): 401 with the reason in
    `detail` and the `WWW-Authenticate: Bearer` challenge."""
    response = detail_response(401, str(exc.message))
    challenge = WWW_AUTHENTICATE
    if getattr(exc, "token_sent", False):
        challenge += ', error="invalid_token"'
    response["WWW-Authenticate"] = challenge
    return response


def token_problem(api_token: ApiToken | None, now: datetime | None = None) -> str | None:
    """Why a presented token cannot be used (the 401 detail), or None when it can."""
    if api_token is None:
        return INVALID_TOKEN
    state = api_token.state(now)
    if state == ApiToken.State.REVOKED:
        return f"Token revoked on {api_token.revoked_at:%Y-%m-%d %H:%M} UTC; ask the project's expert for a new one"
    if state == ApiToken.State.EXPIRED:
        return f"Token expired on {api_token.expires_at:%Y-%m-%d %H:%M} UTC; ask the project's expert for a new one"
    return None


# A token used within this many seconds is not written again: `last_used_at` is for people reading the token list,
# and one UPDATE per API call would be a write on every read.
LAST_USED_RESOLUTION_SECONDS = 60


def basic_token(request: HttpRequest) -> str:
    """The project token sent as the password of `Authorization: Basic base64(public_key:token)`, as the Langfuse
    SDK sends its secret key (its OTLP export and its score API). The public key is ignored: the token alone names
    the project (docs/ingest-otel.md suggests the project's slug for readability)."""
    scheme, _, raw = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        raise ApiUnauthorized(
            "Authentication required: HTTP Basic with any public key and the project's API token as the secret key",
            token_sent=False,
        )
    try:
        _public, sep, token = base64.b64decode(raw.strip(), validate=True).decode("utf-8").partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiUnauthorized(
            "The Basic credentials are not base64 of 'public_key:secret_key'", token_sent=True
        ) from None
    if not sep or not token:
        raise ApiUnauthorized("The secret key (the Basic password) must be the project's API token", token_sent=True)
    return token


class BearerToken(HttpBearer):
    """`Authorization: Bearer <token>`: a project-scoped ApiToken, looked up by its hash. A bearer token that is
    empty, unknown, expired or revoked is a 401 at once, never a fall-through to the session."""

    def __call__(self, request: HttpRequest) -> ApiToken | None:
        scheme, _, raw = request.headers.get(self.header, "").partition(" ")
        if scheme.lower() != "bearer":
            # No token. Another scheme (Basic from a proxy in front, say) is not ours: the session may authenticate.
            return None
        if not raw.strip():
            raise ApiUnauthorized(MALFORMED_HEADER, token_sent=True)
        return self.authenticate(request, raw.strip())

    def authenticate(self, request: HttpRequest, token: str) -> ApiToken:
        api_token = ApiToken.objects.filter(token_hash=ApiToken.hash(token)).first()
        now = timezone.now()
        problem = token_problem(api_token, now)
        if problem is not None:
            raise ApiUnauthorized(problem, token_sent=True)
        assert api_token is not None
        if api_token.last_used_at is None or (now - api_token.last_used_at).total_seconds() > (
            LAST_USED_RESOLUTION_SECONDS
        ):
            ApiToken.objects.filter(pk=api_token.pk).update(last_used_at=now)
        return api_token


class SessionAuth(NinjaSessionAuth):
    """A signed-in browser session, whose unsafe requests must carry the CSRF token (403 "CSRF check Failed"
    otherwise). With neither a token nor a session the answer is 401 here, before the CSRF check could make it a
    403 that an API client cannot tell from a permission problem. (Named as django-ninja's class, so the OpenAPI
    document's security scheme keeps its name.)"""

    def __call__(self, request: HttpRequest) -> Any:
        if not request.user.is_authenticated:
            if request.headers.get("Authorization"):
                raise ApiUnauthorized(MALFORMED_HEADER, token_sent=True)
            raise ApiUnauthorized(MISSING_CREDENTIALS, token_sent=False)
        return super().__call__(request)


# Token first (CI and production apps), then the browser session. Every route of the API takes exactly this, and
# tests/annotation/test_api_auth_contract.py walks the OpenAPI document to hold every route to the 401 contract.
API_AUTH = [BearerToken(), SessionAuth()]

# One answer for a project that does not exist and for one the caller may not see (another project's token, a
# session that is not a member): the body must not tell whether the slug exists.
NO_SUCH_PROJECT = "No such project"


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
    response `{"detail": ...}` to return: the same 404 for a missing project, for another project's token and for a
    session that is not a member (so slugs do not leak), 403 for a caller of the project without the permission.

    The caller is `request.auth` as API_AUTH found it: a missing, unknown, expired or revoked token never gets here
    (401 with `WWW-Authenticate: Bearer`, see `unauthorized_response`).
    """
    if isinstance(project, str):
        project = Project.objects.filter(slug=project).first()
    access = _caller(request, project)
    if access is None:
        return detail_response(404, NO_SUCH_PROJECT)
    if not access.can(permission):
        return detail_response(403, access.denied_message(permission))
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
        return detail_response(404, missing)
    if not access.can(permission):
        return detail_response(403, access.denied_message(permission))
    return found
