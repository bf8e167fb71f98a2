"""On a large project the failure-modes page shows the previous numbers, marked, while a real worker recounts;
the REST route never does, and without a broker the page counts in the request."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache
from django.urls import reverse

from annotation import taxonomy
from annotation.models import FailureMode, Project
from tests.factories import code_note, make_note, make_trace


@pytest.fixture
def large(monkeypatch):
    monkeypatch.setattr(taxonomy, "EXACT_COUNT_LIMIT", 0)
    cache.clear()
    yield
    cache.clear()


def _coded(project: Project, expert, mode: FailureMode, external_id: str) -> None:
    trace = make_trace(project=project, external_id=external_id)
    trace.reviewed_at = trace.created_at
    trace.save(update_fields=["reviewed_at"])
    code_note(make_note(trace=trace, author=expert), mode)


def _page(client, project: Project) -> str:
    return client.get(reverse("failure_mode_list", args=[project.slug])).content.decode()


def _api_count(client, project: Project) -> int:
    rows = client.get(f"/api/v1/projects/{project.slug}/failure-modes").json()
    return rows[0]["trace_count"]


@pytest.mark.django_db(transaction=True)
def test_after_a_change_the_page_shows_marked_earlier_counts_until_the_worker_recounted(
    large, project, expert, expert_client, celery_worker
):
    tone = FailureMode.objects.create(project=project, name="tone")
    count_link = f'?mode={tone.pk}">{{}}</a>'
    _coded(project, expert, tone, "a")
    page = _page(expert_client, project)
    assert "recounting" not in page and count_link.format(1) in page

    _coded(project, expert, tone, "b")  # a new coding moves the data state
    stale = _page(expert_client, project)
    assert count_link.format(1) in stale
    assert "recounting after the latest change" in stale and 'hx-trigger="load delay:2s"' in stale

    # The worker recounts; the page then has the current numbers and stops asking.
    for _ in range(100):
        page = _page(expert_client, project)
        if "recounting" not in page:
            break
        time.sleep(0.1)
    assert "recounting" not in page and count_link.format(2) in page

    _coded(project, expert, tone, "c")
    assert _api_count(expert_client, project) == 3  # the REST route never takes earlier numbers


@pytest.mark.django_db
def test_with_no_broker_the_page_counts_in_the_request(large, project, expert, expert_client, monkeypatch):
    from annotation import tasks

    tone = FailureMode.objects.create(project=project, name="tone")
    _coded(project, expert, tone, "a")
    _page(expert_client, project)
    _coded(project, expert, tone, "b")

    def broker_down(*_args, **_kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.taxonomy_recount_task, "apply_async", broker_down)
    page = _page(expert_client, project)
    assert "recounting" not in page
    assert taxonomy.failure_mode_table(project=project, stale_ok=True).as_of is None


@pytest.mark.django_db
def test_without_a_worker_the_page_counts_for_itself_once_the_recount_is_overdue(
    large, project, expert, expert_client, monkeypatch
):
    tone = FailureMode.objects.create(project=project, name="tone")
    _coded(project, expert, tone, "a")
    _page(expert_client, project)
    _coded(project, expert, tone, "b")
    # Queued (the test broker has no worker): earlier numbers, marked, while the recount is young.
    assert taxonomy.failure_mode_table(project=project, stale_ok=True).as_of is not None
    monkeypatch.setattr(taxonomy, "RECOUNT_WAIT_SECONDS", 0)
    table = taxonomy.failure_mode_table(project=project, stale_ok=True)
    assert table.as_of is None and table.counts[0].trace_count == 2
