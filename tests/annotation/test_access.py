"""annotation.access: the permission table (each role and the API token × each permission), the page access and the
API access function, and lookups of objects through their project."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404, HttpResponse
from django.template import Context, Template
from django.test import RequestFactory

from annotation.access import (
    PERMISSIONS,
    TOKEN_DENIED,
    Permission,
    ProjectAccess,
    api_access,
    api_object,
    get_project_for_user,
)
from annotation.models import ApiToken, Note, Project, Role, Trace
from annotation.services import api_token_create
from tests.factories import add_member, make_note, make_project, make_trace, make_user

E, G, V = Role.EXPERT, Role.ENGINEER, Role.VIEWER

# Written out again on purpose: a change to the table in annotation/access.py has to be made here too.
EXPECTED: dict[Permission, tuple[set[str], bool]] = {
    Permission.VIEW: ({E, G, V}, True),
    Permission.ADD_TRACES: ({E, G}, True),
    Permission.LABEL: ({E}, False),
    Permission.EDIT_CRITERIA: ({E, G}, False),
    Permission.EDIT_CODEBOOK: ({E, G}, False),
    Permission.CREATE_SESSIONS: ({E, G}, False),
    Permission.EDIT_GOLDEN_SET: ({E, G}, False),
    Permission.EDIT_JUDGES: ({E, G}, False),
    Permission.RUN_JUDGES: ({E, G}, False),
    Permission.PROMOTE_JUDGES: ({E, G}, False),
    Permission.SET_PROMOTION_BAR: ({E}, False),
    Permission.RUN_SUITE: ({E, G}, True),
    Permission.EDIT_ALERT_RULES: ({E, G}, False),
    Permission.SET_SAMPLING_RATE: ({E}, False),
    Permission.GRADE_TRIALS: ({E, G}, False),
    Permission.MANAGE_TOKENS: ({E}, False),
    Permission.MANAGE_MEMBERS: ({E}, False),
    Permission.MARK_GUARDRAILS: ({E}, False),
}


def test_every_permission_is_in_the_table_and_in_this_test():
    assert set(PERMISSIONS) == set(Permission) == set(EXPECTED)


@pytest.mark.parametrize("role", [E, G, V])
@pytest.mark.parametrize("permission", list(Permission))
def test_each_role_has_exactly_the_permissions_of_the_table(permission, role):
    access = ProjectAccess(project=Project(slug="acme"), role=role)
    roles, _ = EXPECTED[permission]
    assert access.can(permission) is (role in roles)
    if role in roles:
        access.require(permission)
    else:
        with pytest.raises(PermissionDenied) as denied:
            access.require(permission)
        assert str(denied.value) == PERMISSIONS[permission].denied


@pytest.mark.parametrize("permission", list(Permission))
def test_the_projects_token_has_only_the_permissions_of_ci_and_production_apps(permission):
    access = ProjectAccess(project=Project(slug="acme"), token=ApiToken(name="ci"))
    _, token = EXPECTED[permission]
    assert access.can(permission) is token
    assert access.denied_message(permission) == TOKEN_DENIED


def test_each_denial_message_says_who_may():
    for permission, rule in PERMISSIONS.items():
        if rule.roles != frozenset(Role.values):
            assert ("expert" in rule.denied) or rule.denied.startswith("Viewers cannot"), permission


def test_templates_ask_by_permission_name_and_a_misspelt_name_is_an_error():
    template = Template("{% if access.may.label %}label{% endif %}|{% if access.may.edit_codebook %}code{% endif %}")
    project = Project(slug="acme")
    rendered = {role: template.render(Context({"access": ProjectAccess(project=project, role=role)})) for role in Role}
    assert rendered == {E: "label|code", G: "|code", V: "|"}
    with pytest.raises(ImproperlyConfigured, match="No permission 'edit_codbook'"):
        Template("{% if access.may.edit_codbook %}x{% endif %}").render(
            Context({"access": ProjectAccess(project=project, role=E)})
        )


# --- pages ----------------------------------------------------------------------------------------------------------


def page_request(user):
    request = RequestFactory().get("/projects/acme/")
    request.user = user
    return request


@pytest.mark.django_db
def test_a_page_gives_a_member_the_project_and_role_and_outsiders_a_404(project, expert, teammate, outsider):
    access = get_project_for_user(page_request(teammate), "acme")
    assert (access.project, access.role, access.user) == (project, G, teammate)
    assert get_project_for_user(page_request(expert), "acme").role == E
    for user, slug in [(outsider, "acme"), (AnonymousUser(), "acme"), (expert, "nope")]:
        with pytest.raises(Http404):
            get_project_for_user(page_request(user), slug)


@pytest.mark.django_db
def test_a_page_answers_403_with_the_tables_message_to_a_member_without_the_permission(project, teammate):
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    assert get_project_for_user(page_request(teammate), "acme", Permission.EDIT_CODEBOOK).role == G
    with pytest.raises(PermissionDenied, match="^Only the project's expert labels traces"):
        get_project_for_user(page_request(teammate), "acme", Permission.LABEL)
    with pytest.raises(PermissionDenied, match="^Only the expert and engineers can change the codebook"):
        get_project_for_user(page_request(viewer), "acme", Permission.EDIT_CODEBOOK)


@pytest.mark.django_db
def test_an_object_is_found_through_its_project_and_another_projects_is_a_404(project, expert):
    other = make_project(slug="other", expert=expert)
    mine, theirs = make_trace(project=project, external_id="t-1"), make_trace(project=other, external_id="t-1")
    note = make_note(trace=theirs, author=expert)
    access = get_project_for_user(page_request(expert), "acme")
    assert access.get_object_or_404(Trace, external_id="t-1") == mine
    with pytest.raises(Http404):
        access.get_object_or_404(Trace, pk=theirs.pk)
    with pytest.raises(Http404):
        access.get_object_or_404(Note.objects.select_related("trace"), via="trace__project", pk=note.pk)
    assert (
        get_project_for_user(page_request(expert), "other").get_object_or_404(Note, via="trace__project", pk=note.pk)
        == note
    )


# --- API routes -------------------------------------------------------------------------------------------------------


def api_request(auth):
    """What django-ninja hands a route: `request.auth` is the token or the session's user that API_AUTH found."""
    request = RequestFactory().get("/api/v1/")
    request.auth = auth
    return request


def answer(response: HttpResponse) -> tuple[int, dict]:
    assert response["Content-Type"] == "application/json; charset=utf-8"
    return response.status_code, json.loads(response.content)


@pytest.fixture
def token(project) -> ApiToken:
    return api_token_create(project=project, name="ci")[0]


@pytest.fixture
def other_token(expert) -> ApiToken:
    return api_token_create(project=make_project(slug="other", expert=expert), name="ci")[0]


@pytest.fixture
def viewer(project):
    user = make_user("viewer")
    add_member(project, user, Role.VIEWER)
    return user


@pytest.mark.django_db
def test_the_projects_token_gets_access_by_slug_or_project(project, token):
    for where in ("acme", project):
        access = api_access(api_request(token), where, Permission.ADD_TRACES)
        assert isinstance(access, ProjectAccess)
        assert (access.project, access.token, access.user, access.role) == (project, token, None, None)


@pytest.mark.django_db
def test_another_projects_token_gets_the_answer_of_a_missing_project(project, other_token):
    # One answer for a real slug and a missing one: a token must not tell which projects exist.
    assert answer(api_access(api_request(other_token), "acme", Permission.VIEW)) == (404, {"detail": "No such project"})
    assert answer(api_access(api_request(other_token), "nope", Permission.VIEW)) == (404, {"detail": "No such project"})


@pytest.mark.django_db
def test_a_members_session_gets_its_role_and_user(project, teammate):
    access = api_access(api_request(teammate), "acme", Permission.RUN_SUITE)
    assert isinstance(access, ProjectAccess)
    assert (access.project, access.role, access.user, access.token) == (project, G, teammate, None)


@pytest.mark.django_db
def test_a_session_outsider_gets_the_answer_of_a_missing_project(project, outsider):
    assert answer(api_access(api_request(outsider), "acme", Permission.VIEW)) == (404, {"detail": "No such project"})
    assert answer(api_access(api_request(outsider), "nope", Permission.VIEW)) == (404, {"detail": "No such project"})


@pytest.mark.django_db
def test_a_viewer_reads_but_gets_403_with_the_tables_message_where_a_write_is_needed(project, viewer):
    assert isinstance(api_access(api_request(viewer), "acme", Permission.VIEW), ProjectAccess)
    for permission in (Permission.ADD_TRACES, Permission.RUN_SUITE):
        assert answer(api_access(api_request(viewer), "acme", permission)) == (
            403,
            {"detail": PERMISSIONS[permission].denied},
        )


@pytest.mark.django_db
def test_a_token_gets_403_for_what_only_members_may_do(project, token):
    assert answer(api_access(api_request(token), "acme", Permission.LABEL)) == (403, {"detail": TOKEN_DENIED})


@pytest.mark.django_db
def test_an_object_route_answers_404_alike_for_a_missing_object_and_one_the_caller_cannot_see(
    project, expert, token, other_token, outsider, viewer
):
    trace = make_trace(project=project)
    note = make_note(trace=trace, author=expert)
    missing = f"No trace {trace.pk}"
    for caller in (token, expert, viewer):
        assert api_object(api_request(caller), Trace.objects, trace.pk, Permission.VIEW, missing=missing) == trace
    assert (
        api_object(api_request(token), Note.objects, note.pk, Permission.VIEW, via="trace__project", missing="x")
        == note
    )
    for caller in (other_token, outsider):
        found = api_object(api_request(caller), Trace.objects, trace.pk, Permission.VIEW, missing=missing)
        assert answer(found) == (404, {"detail": missing})
    gone = api_object(api_request(token), Trace.objects, trace.pk + 1000, Permission.VIEW, missing="No trace")
    assert answer(gone) == (404, {"detail": "No trace"})
    denied = api_object(api_request(viewer), Trace.objects, trace.pk, Permission.ADD_TRACES, missing=missing)
    assert answer(denied) == (403, {"detail": PERMISSIONS[Permission.ADD_TRACES].denied})
