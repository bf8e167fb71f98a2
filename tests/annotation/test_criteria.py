"""Criteria: created and edited by the expert and engineers, born from a failure mode, read by everyone."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from annotation.models import Criterion, FailureMode
from annotation.services import DomainError, criterion_create, criterion_update
from tests.factories import add_member, make_criterion, make_label, make_project, make_trace, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def mode(project):
    return FailureMode.objects.create(project=project, name="invents fees", definition="States a fee we don't charge.")


def test_create_and_update_with_validation(project, mode):
    criterion = criterion_create(project=project, name="  no  invented fees ", definition=" Fail on any made-up fee. ")
    assert (criterion.name, criterion.definition, criterion.position) == (
        "no invented fees",
        "Fail on any made-up fee.",
        1,
    )
    second = criterion_create(project=project, name="tone", failure_mode=mode)
    assert (second.position, second.failure_mode) == (2, mode)
    with pytest.raises(DomainError, match="already exists"):
        criterion_create(project=project, name="TONE")
    with pytest.raises(DomainError, match="needs a name"):
        criterion_create(project=project, name="   ")
    with pytest.raises(DomainError, match="limited to 100 characters"):
        criterion_create(project=project, name="x" * 101)
    other_mode = FailureMode.objects.create(project=make_project(slug="other"), name="x")
    with pytest.raises(DomainError, match="belongs to another project"):
        criterion_create(project=project, name="y", failure_mode=other_mode)
    criterion_update(criterion=criterion, name="fees", definition="", failure_mode=mode)
    criterion.refresh_from_db()
    assert (criterion.name, criterion.definition, criterion.failure_mode) == ("fees", "", mode)
    with pytest.raises(DomainError, match="already exists"):
        criterion_update(criterion=criterion, name="tone", definition="", failure_mode=None)


def test_a_retired_mode_cannot_be_newly_linked_but_an_existing_link_survives_edits(project, mode):
    criterion = criterion_create(project=project, name="fees", failure_mode=mode)
    FailureMode.objects.filter(pk=mode.pk).update(retired_at="2026-11-01T00:00:00Z")
    mode.refresh_from_db()
    criterion_update(criterion=criterion, name="fees", definition="still", failure_mode=mode)
    with pytest.raises(DomainError, match="is retired"):
        criterion_create(project=project, name="other", failure_mode=mode)


def test_renaming_keeps_labels(project):
    criterion = make_criterion(project=project, name="factual")
    make_label(trace=make_trace(project=project), criterion=criterion, verdict="fail")
    criterion_update(criterion=criterion, name="grounded", definition="", failure_mode=None)
    assert Criterion.objects.get().labels.count() == 1


def test_the_pages(project, mode, expert_client, teammate_client):
    new_url = reverse("criterion_new", args=["acme"])
    page = expert_client.get(new_url + f"?mode={mode.pk}").content.decode()
    assert 'value="invents fees"' in page and "States a fee we don&#x27;t charge." in page  # prefilled, escaped
    response = teammate_client.post(new_url, {"name": "fees", "definition": "d", "failure_mode": mode.pk})
    assert response.status_code == 302
    criterion = Criterion.objects.get(name="fees")
    assert criterion.failure_mode == mode
    project_page = expert_client.get(reverse("project_detail", args=["acme"])).content.decode()
    assert reverse("criterion_edit", args=["acme", criterion.pk]) in project_page
    edit_url = reverse("criterion_edit", args=["acme", criterion.pk])
    bad = expert_client.post(edit_url, {"name": "", "definition": "d"})
    assert bad.status_code == 400 and "This field is required" in bad.content.decode()
    assert expert_client.post(edit_url, {"name": "fees v2", "definition": "<b>x</b>"}).status_code == 302
    criterion.refresh_from_db()
    assert (criterion.name, criterion.failure_mode) == ("fees v2", None)
    mode_page = expert_client.get(reverse("failure_mode_detail", args=["acme", mode.pk])).content.decode()
    assert f"{new_url}?mode={mode.pk}" in mode_page


def test_viewers_get_403_and_outsiders_404(project, outsider_client):
    criterion = make_criterion(project=project, name="factual")
    viewer = make_user("viewer")
    add_member(project, viewer, role="viewer")
    client = Client()
    client.force_login(viewer)
    for url in (reverse("criterion_new", args=["acme"]), reverse("criterion_edit", args=["acme", criterion.pk])):
        assert client.get(url).status_code == 403
        assert client.post(url, {"name": "x"}).status_code == 403
        assert outsider_client.get(url).status_code == 404
        assert outsider_client.post(url, {"name": "x"}).status_code == 404
    assert "Add a criterion" not in client.get(reverse("project_detail", args=["acme"])).content.decode()
    other = make_criterion(project=make_project(slug="other"), name="x")
    expert = Client()
    expert.force_login(project.expert)
    assert expert.get(reverse("criterion_edit", args=["acme", other.pk])).status_code == 404


def test_csrf_is_enforced(project, expert):
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    assert client.post(reverse("criterion_new", args=["acme"]), {"name": "x"}).status_code == 403
