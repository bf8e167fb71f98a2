from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.models import Membership, Role
from annotation.services import DomainError, membership_set, project_create, project_set_expert
from tests.factories import make_criterion, make_label, make_trace, make_user

pytestmark = pytest.mark.django_db


def test_login_is_required_for_project_list(client):
    response = client.get("/projects/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_page_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b'name="username"' in response.content


def test_project_list_shows_only_the_users_projects(project, teammate_client, outsider_client):
    assert b"Acme support bot" in teammate_client.get("/projects/").content
    assert b"Acme support bot" not in outsider_client.get("/projects/").content


def test_overview_counts_traces_and_reviews(project, expert_client):
    make_trace(project=project)
    reviewed = make_trace(project=project)
    reviewed.reviewed_at = reviewed.created_at
    reviewed.save()
    response = expert_client.get(reverse("project_detail", args=["acme"]))
    assert response.status_code == 200
    assert response.context["trace_count"] == 2
    assert response.context["reviewed_count"] == 1


def test_outsider_gets_404_for_project_overview(project, outsider_client):
    assert outsider_client.get("/projects/acme/").status_code == 404


def test_unknown_project_is_404_not_500(expert_client):
    assert expert_client.get("/projects/nope/").status_code == 404


def test_setting_a_new_expert_demotes_the_old_one(project, expert):
    newcomer = make_user("newcomer")
    project_set_expert(project=project, user=newcomer)
    project.refresh_from_db()
    assert project.expert == newcomer
    assert Membership.objects.get(project=project, user=expert).role == Role.ENGINEER
    assert Membership.objects.get(project=project, user=newcomer).role == Role.EXPERT


def test_duplicate_project_slug_is_a_clear_error(project):
    with pytest.raises(DomainError, match="'acme' already exists"):
        project_create(slug="acme")


def test_expert_cannot_be_downgraded_without_a_replacement(project, expert):
    with pytest.raises(DomainError, match="expert"):
        membership_set(project=project, user=expert, role=Role.VIEWER)


def test_overview_counts_labels_per_criterion_and_verdict(project, expert_client):
    factual = make_criterion(project=project, name="factual")
    make_criterion(project=project, name="tone")
    for verdict in ("pass", "fail", "fail"):
        make_label(trace=make_trace(project=project), criterion=factual, verdict=verdict)
    response = expert_client.get(reverse("project_detail", args=["acme"]))
    counts = {c.name: (c.passes, c.fails) for c in response.context["criteria"]}
    assert counts == {"factual": (1, 2), "tone": (0, 0)}
