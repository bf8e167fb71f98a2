"""Regression-suite floors: set from the suites panel on the criterion page, kept when the criterion is edited."""

from __future__ import annotations

import html

import pytest
from django.urls import reverse

from annotation.models import Role
from annotation.services import DomainError, criterion_update
from suites.floors import suite_floor, suite_floor_set, suite_floors
from tests.factories import add_member, make_criterion, make_user

pytestmark = pytest.mark.django_db


def test_the_floor_is_set_from_the_criterion_page_and_kept_by_other_edits(project, expert_client):
    criterion = make_criterion(project=project, name="tone")
    page_url = reverse("criterion_edit", args=[project.slug, criterion.pk])
    floor_url = reverse("suite_floor_update", args=[project.slug, criterion.pk])
    page = expert_client.get(page_url).content.decode()
    assert 'id="suite-floor"' in page and f'action="{floor_url}"' in page

    response = expert_client.post(floor_url, {"min_pass_rate": "1.5"}, follow=True)
    assert "pass rate from 0 to 1; got 1.5" in html.unescape(response.content.decode())
    response = expert_client.post(floor_url, {"min_pass_rate": "most"}, follow=True)
    assert "e.g. 0.7; got 'most'" in html.unescape(response.content.decode())
    assert suite_floor(criterion=criterion) is None

    assert expert_client.post(floor_url, {"min_pass_rate": "0.7"}).url == page_url
    assert suite_floor(criterion=criterion) == 0.7
    assert 'value="0.7"' in expert_client.get(page_url).content.decode()
    criterion_update(criterion=criterion, name="curt tone", definition="", failure_mode=None)
    assert suite_floors(project=project) == {criterion.pk: 0.7}

    expert_client.post(floor_url, {"min_pass_rate": ""})
    assert suite_floor(criterion=criterion) is None


def test_viewers_cannot_set_a_floor_and_outsiders_get_404(project, client, outsider_client):
    criterion = make_criterion(project=project, name="tone")
    floor_url = reverse("suite_floor_update", args=[project.slug, criterion.pk])
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client.force_login(viewer)
    assert client.post(floor_url, {"min_pass_rate": "0.5"}).status_code == 403
    assert outsider_client.post(floor_url, {"min_pass_rate": "0.5"}).status_code == 404
    assert suite_floor(criterion=criterion) is None


def test_a_floor_outside_zero_to_one_is_refused(project):
    criterion = make_criterion(project=project)
    for bad in (-0.1, 1.01, float("nan")):
        with pytest.raises(DomainError, match="pass rate from 0 to 1"):
            suite_floor_set(criterion=criterion, min_pass_rate=bad)
    assert suite_floor_set(criterion=criterion, min_pass_rate=1.0) == 1.0
