"""What each label records of how it was given (time on the trace, position in the sitting, which queue), the
sitting's end after a pause, and the break suggestion (issue 15 §3)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from annotation.models import LabelChange, Trace
from annotation.services import criterion_create
from annotation.sittings import opened_token, seconds_open
from tests.factories import make_trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def criterion(project, expert):
    return criterion_create(project=project, name="no_apology", definition="Fail when it apologises.", user=expert)


def _open(client, project, trace, qs: str = "?order=random") -> str:
    html = client.get(reverse("trace_detail", args=[project.slug, trace.external_id]) + qs).content.decode()
    return re.search(r'id="opened-at" name="opened" value="([^"]+)"', html).group(1)


def _label(client, project, trace, criterion, verdict: str, opened: str, qs: str = "?order=random"):
    url = reverse("label_save", args=[project.slug, trace.pk, criterion.pk]) + qs
    return client.post(url, {"verdict": verdict, "opened": opened}, headers={"HX-Request": "true"})


def test_the_signed_open_time_gives_the_seconds_and_nothing_when_forged_or_stale():
    now = timezone.now()
    assert seconds_open(opened_token(now - timedelta(seconds=42)), now=now) == 42.0
    assert seconds_open("", now=now) is None
    assert seconds_open(opened_token(now)[:-2] + "xx", now=now) is None
    assert seconds_open(opened_token(now - timedelta(hours=4)), now=now) is None  # left open, not read


def test_each_label_records_its_time_its_position_in_the_sitting_and_its_queue(project, criterion, expert_client):
    first, second = make_trace(project=project, external_id="t-1"), make_trace(project=project, external_id="t-2")
    _label(expert_client, project, first, criterion, "fail", _open(expert_client, project, first))
    opened = opened_token(timezone.now() - timedelta(seconds=30))
    _label(expert_client, project, second, criterion, "pass", opened)
    _label(expert_client, project, first, criterion, "pass", _open(expert_client, project, first))  # counted once
    rows = list(LabelChange.objects.order_by("id").values_list("sitting_position", "via", "seconds_on_trace"))
    assert [(position, via) for position, via, _ in rows] == [(1, "random"), (2, "random"), (1, "random")]
    assert 29 <= rows[1][2] <= 60 and all(seconds is not None and seconds >= 0 for _, _, seconds in rows)


def test_a_pause_longer_than_the_gap_starts_a_new_sitting(project, criterion, expert_client, settings):
    settings.EVALSTUDIO_SITTING_GAP_MINUTES = 30
    first, second = make_trace(project=project, external_id="t-1"), make_trace(project=project, external_id="t-2")
    _label(expert_client, project, first, criterion, "fail", _open(expert_client, project, first))
    session = expert_client.session
    key = f"review_sitting:{project.pk}"
    an_hour_ago = (timezone.now() - timedelta(minutes=60)).isoformat()
    session[key] = {**session[key], "started": an_hour_ago, "last": an_hour_ago}
    session.save()
    _label(expert_client, project, second, criterion, "pass", _open(expert_client, project, second))
    assert list(LabelChange.objects.order_by("id").values_list("sitting_position", flat=True)) == [1, 1]
    assert LabelChange.objects.order_by("id").last().sitting_minutes < 1


def test_a_label_in_a_session_names_the_sessions_strategy(project, criterion, expert, expert_client):
    from annotation.sessions import review_session_store

    trace = make_trace(project=project, external_id="t-1")
    session = review_session_store(project=project, created_by=expert, strategy="longest", items=[(trace.pk, {})])
    qs = f"?order=random&session={session.pk}"
    _label(expert_client, project, trace, criterion, "fail", _open(expert_client, project, trace, qs), qs)
    assert LabelChange.objects.get().via == "session:longest"


def test_the_page_suggests_a_break_after_the_configured_length_and_never_blocks(
    project, criterion, expert_client, settings
):
    settings.EVALSTUDIO_SITTING_BREAK_TRACES = 2
    traces = [make_trace(project=project, external_id=f"t-{i}") for i in range(3)]
    page = reverse("trace_detail", args=[project.slug, "t-2"]) + "?order=random"
    _label(expert_client, project, traces[0], criterion, "fail", _open(expert_client, project, traces[0]))
    assert "break-hint" not in expert_client.get(page).content.decode()
    response = _label(expert_client, project, traces[1], criterion, "fail", _open(expert_client, project, traces[1]))
    assert "A short break is a good idea" in response.content.decode()  # in the progress swapped after the save
    assert "2 traces in 0 minutes" in expert_client.get(page).content.decode()
    assert _label(expert_client, project, traces[2], criterion, "pass", "").status_code == 200
    assert LabelChange.objects.count() == 3


def test_imported_labels_record_no_sitting(project, criterion):
    from annotation.ingest import import_records

    import_records(
        project=project,
        records=[
            {"id": "t-9", "input": "a", "output": "b", "labels": [{"criterion": "no_apology", "verdict": "pass"}]}
        ],
    )
    assert list(LabelChange.objects.values_list("sitting_position", "via", "seconds_on_trace")) == [(None, "", None)]


def test_labels_for_two_criteria_and_a_resave_count_the_trace_once_in_the_sitting(
    project, criterion, expert, expert_client
):
    other = criterion_create(project=project, name="grounded", definition="Fail when it invents.", user=expert)
    first, second = make_trace(project=project, external_id="t-1"), make_trace(project=project, external_id="t-2")
    opened = _open(expert_client, project, first)
    _label(expert_client, project, first, criterion, "fail", opened)
    _label(expert_client, project, first, other, "pass", opened)
    _label(expert_client, project, first, criterion, "pass", opened)  # the autosave again, the verdict changed
    _label(expert_client, project, second, criterion, "fail", _open(expert_client, project, second))
    rows = list(LabelChange.objects.order_by("id").values_list("label__trace__external_id", "sitting_position"))
    assert rows == [("t-1", 1), ("t-1", 1), ("t-1", 1), ("t-2", 2)]


def test_a_trace_reviewed_before_the_sitting_counts_once_at_its_first_position_in_it(
    project, criterion, expert, expert_client, settings
):
    """A trace first reviewed in an earlier sitting (an earlier day, or before a pause ended the sitting) and
    labelled again now is one trace of this sitting: the next trace comes after it, and its own later saves keep
    its position."""
    settings.EVALSTUDIO_SITTING_BREAK_TRACES = 2
    other = criterion_create(project=project, name="grounded", definition="Fail when it invents.", user=expert)
    earlier, fresh = make_trace(project=project, external_id="t-0"), make_trace(project=project, external_id="t-1")
    Trace.objects.filter(pk=earlier.pk).update(reviewed_at=timezone.now() - timedelta(days=2))
    _label(expert_client, project, earlier, criterion, "fail", _open(expert_client, project, earlier))
    _label(expert_client, project, fresh, criterion, "pass", _open(expert_client, project, fresh))
    response = _label(expert_client, project, earlier, other, "pass", _open(expert_client, project, earlier))
    rows = list(LabelChange.objects.order_by("id").values_list("label__trace__external_id", "sitting_position"))
    assert rows == [("t-0", 1), ("t-1", 2), ("t-0", 1)]
    html = response.content.decode()
    assert "This sitting <strong>2</strong>" in html and "2 traces in 0 minutes" in html  # the break hint's count
