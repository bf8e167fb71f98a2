"""The members page: every member sees who is in the project; only the expert invites, withdraws, changes roles and
removes members (Permission.MANAGE_MEMBERS); outsiders get 404."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from annotation.members import invitations_accept
from annotation.models import Invitation, Membership, Role
from tests.factories import add_member, make_user

URL = "/projects/acme/members/"


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.mark.django_db
def test_outsider_gets_404_for_the_members_page(project, outsider_client):
    assert outsider_client.get(URL).status_code == 404
    assert (
        outsider_client.post(URL, {"action": "invite", "email": "x@example.com", "role": "viewer"}).status_code == 404
    )
    assert not Invitation.objects.exists()


@pytest.mark.django_db
def test_members_see_the_list_but_only_the_expert_sees_invitations_and_forms(project, teammate_client, expert_client):
    Invitation.objects.create(project=project, email="pending@example.com", role=Role.VIEWER)
    page = teammate_client.get(URL).content.decode()
    assert "expert" in page and "teammate" in page
    assert "pending@example.com" not in page and 'id="invite"' not in page
    page = expert_client.get(URL).content.decode()
    assert "pending@example.com" in page and 'id="invite"' in page


@pytest.mark.django_db
def test_an_engineer_cannot_invite_or_change_roles(project, teammate_client, teammate):
    response = teammate_client.post(URL, {"action": "invite", "email": "x@example.com", "role": "engineer"})
    assert response.status_code == 403
    response = teammate_client.post(URL, {"action": "set_role", "user": teammate.pk, "role": "viewer"})
    assert response.status_code == 403
    assert not Invitation.objects.exists()
    assert Membership.objects.get(project=project, user=teammate).role == Role.ENGINEER


@pytest.mark.django_db
def test_expert_invites_withdraws_changes_a_role_and_removes_a_member(project, expert_client, teammate):
    response = expert_client.post(
        URL, {"action": "invite", "email": " New@Example.com ", "role": "viewer"}, follow=True
    )
    assert "Invited new@example.com as viewer." in _messages(response)
    invitation = Invitation.objects.get(project=project)
    assert (invitation.email, invitation.role, invitation.invited_by.username) == (
        "new@example.com",
        "viewer",
        "expert",
    )

    expert_client.post(URL, {"action": "withdraw", "invitation": invitation.pk})
    assert not Invitation.objects.exists()

    expert_client.post(URL, {"action": "set_role", "user": teammate.pk, "role": "viewer"})
    assert Membership.objects.get(project=project, user=teammate).role == Role.VIEWER

    expert_client.post(URL, {"action": "remove", "user": teammate.pk})
    assert not Membership.objects.filter(project=project, user=teammate).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"action": "invite", "email": "not-an-email", "role": "viewer"},
            "'not-an-email' is not a valid email address",
        ),
        ({"action": "invite", "email": "a@example.com", "role": "expert"}, "Role must be one of engineer, viewer"),
        ({"action": "invite", "email": "a@example.com", "role": "owner"}, "Role must be one of engineer, viewer"),
        ({"action": "withdraw", "invitation": "12345"}, "That invitation is no longer pending"),
        ({"action": "withdraw", "invitation": "x"}, "The form names no member or invitation"),
        ({"action": "remove", "user": "999999"}, "That person is not a member of this project"),
        ({"action": "explode"}, "Unknown action 'explode'"),
    ],
)
@pytest.mark.django_db
def test_a_bad_members_form_is_refused_with_a_clear_message_and_changes_nothing(project, expert_client, data, message):
    response = expert_client.post(URL, data, follow=True)
    assert response.status_code == 200
    assert any(message in m for m in _messages(response)), _messages(response)
    assert not Invitation.objects.exists()
    assert Membership.objects.filter(project=project).count() == 2


@pytest.mark.django_db
def test_the_expert_cannot_be_removed_or_demoted_here(project, expert_client, expert):
    response = expert_client.post(URL, {"action": "remove", "user": expert.pk}, follow=True)
    assert any("expert cannot be removed" in m for m in _messages(response))
    response = expert_client.post(URL, {"action": "set_role", "user": expert.pk, "role": "viewer"}, follow=True)
    assert any("is the project's expert" in m for m in _messages(response))
    assert Membership.objects.get(project=project, user=expert).role == Role.EXPERT


@pytest.mark.django_db
def test_a_second_invitation_for_a_pending_address_or_a_member_is_refused(project, expert_client, teammate):
    teammate.email = "team@example.com"
    teammate.save()
    expert_client.post(URL, {"action": "invite", "email": "a@example.com", "role": "viewer"})
    response = expert_client.post(URL, {"action": "invite", "email": "A@example.com", "role": "engineer"}, follow=True)
    assert any("already invited" in m for m in _messages(response))
    response = expert_client.post(URL, {"action": "invite", "email": "team@example.com", "role": "viewer"}, follow=True)
    assert any("already a member" in m for m in _messages(response))
    assert list(Invitation.objects.values_list("email", "role")) == [("a@example.com", "viewer")]


@pytest.mark.django_db
def test_accepting_is_safe_twice_and_keeps_an_existing_members_role(project, expert):
    user = make_user("erin")
    user.email = "erin@example.com"
    user.save()
    add_member(project, user, Role.ENGINEER)
    Invitation.objects.create(project=project, email="erin@example.com", role=Role.VIEWER, invited_by=expert)
    assert len(invitations_accept(user=user)) == 1
    assert invitations_accept(user=user) == []
    assert Membership.objects.get(project=project, user=user).role == Role.ENGINEER
    assert User.objects.filter(email="erin@example.com").count() == 1
