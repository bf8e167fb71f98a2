"""The server's side of prefetch and swap on the review page (static/js/trace_review.js): the fetch ahead changes no
state, the swap answer says where the queue goes with a fresh `opened` token, and blind pages are never handed to
a prefetch. The browser side is tests/browser/test_review_speed.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from annotation.models import Label, Trace
from annotation.views.review import PREFETCH_HEADER, SWAP_HEADER
from tests.factories import make_criterion, make_label, make_trace

pytestmark = pytest.mark.django_db

BASE = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _traces(project, n: int = 3) -> list[Trace]:
    return [
        make_trace(project=project, external_id=f"q-{i}", occurred_at=BASE + timedelta(minutes=i)) for i in range(n)
    ]


def test_swap_answer_for_j_names_the_next_trace_with_a_fresh_token_and_the_progress(client, project, expert):
    type(project).objects.filter(pk=project.pk).update(rereview_rate=0)
    traces = _traces(project)
    client.force_login(expert)
    before = timezone.now().timestamp()
    response = client.get(
        reverse("trace_next", args=["acme", traces[0].pk]) + "?order=oldest", headers={SWAP_HEADER: "1"}
    )
    assert response.status_code == 200
    assert response["X-Review-Location"] == reverse("trace_detail", args=["acme", "q-1"]) + "?order=oldest"
    assert float(signing.loads(response["X-Opened-At"], salt="annotation.sittings.opened")) >= before
    assert 'id="queue-progress"' in response.content.decode()
    assert response["Cache-Control"] == "no-store"
    assert response["X-Review-Rereview-Next"] == "0"  # re-reviews are off in this project


def test_swap_answer_for_r_marks_reviewed_and_counts_it_in_the_progress(client, project, expert):
    traces = _traces(project)
    client.force_login(expert)
    response = client.post(
        reverse("trace_mark_reviewed", args=["acme", traces[0].pk]) + "?order=oldest", headers={SWAP_HEADER: "1"}
    )
    assert response.status_code == 200
    assert response["X-Review-Location"].startswith(reverse("trace_detail", args=["acme", "q-1"]))
    assert Trace.objects.get(pk=traces[0].pk).reviewed_at is not None
    assert "<strong>1</strong> of 3 reviewed" in response.content.decode()


def test_fetching_ahead_uses_no_queue_step_and_a_due_rereview_wins_the_swap(client, project, expert):
    criterion = make_criterion(project=project, name="factual")
    old = make_trace(project=project, external_id="old", occurred_at=BASE - timedelta(days=30))
    make_label(trace=old, criterion=criterion, verdict="fail", critique="Earlier words")
    Label.objects.filter(trace=old).update(updated_at=timezone.now() - timedelta(days=30))
    Trace.objects.filter(pk=old.pk).update(reviewed_at=timezone.now() - timedelta(days=30))
    traces = _traces(project)
    type(project).objects.filter(pk=project.pk).update(rereview_rate=1.0)
    client.force_login(expert)
    key = f"review_steps:{project.pk}"

    ahead = client.get(
        reverse("trace_next", args=["acme", traces[0].pk]) + "?order=oldest",
        headers={PREFETCH_HEADER: "1"},
        follow=True,
    )
    assert ahead.status_code == 200 and 'data-trace-id="q-1"' in ahead.content.decode()
    assert client.session.get(key) is None

    step = client.post(
        reverse("trace_mark_reviewed", args=["acme", traces[0].pk]) + "?order=oldest", headers={SWAP_HEADER: "1"}
    )
    assert 'data-rereview-next="1"' in ahead.content.decode()
    assert step["X-Review-Location"].startswith(reverse("rereview", args=["acme", old.pk]) + "?next=")
    assert client.session.get(key) == 1
    assert step["X-Review-Rereview-Next"] == "1"


def test_outsider_gets_404_for_a_swap_answer(client, project, outsider):
    traces = _traces(project, 2)
    client.force_login(outsider)
    url = reverse("trace_next", args=["acme", traces[0].pk])
    assert client.get(url, headers={SWAP_HEADER: "1"}).status_code == 404
    assert client.get(reverse("trace_detail", args=["acme", "q-1"]), headers={PREFETCH_HEADER: "1"}).status_code == 404


def test_teammate_cannot_mark_reviewed_through_a_swap(client, project, teammate):
    traces = _traces(project, 2)
    client.force_login(teammate)
    response = client.post(reverse("trace_mark_reviewed", args=["acme", traces[0].pk]), headers={SWAP_HEADER: "1"})
    assert response.status_code == 403
    assert Trace.objects.get(pk=traces[0].pk).reviewed_at is None
