"""Traces sharing a session id read as one conversation: in time order, linked from each trace, escaped, members
only, and read through the session index."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from annotation.models import Trace
from annotation.selectors import conversation_read
from tests.factories import make_trace

pytestmark = pytest.mark.django_db


def url(session: str) -> str:
    return reverse("conversation_detail", args=["acme"]) + "?" + f"session={session}"


@pytest.fixture
def conversation(project):
    start = timezone.now() - timedelta(hours=1)
    # Stored out of order: the page orders by when each turn happened.
    for i in (2, 0, 1):
        trace = make_trace(project=project, external_id=f"turn-{i}", input=f"question {i}", output=f"answer {i}")
        Trace.objects.filter(pk=trace.pk).update(session_id="s/1 é", occurred_at=start + timedelta(minutes=i))
    make_trace(project=project, external_id="other", input="elsewhere", output="no")
    return "s/1 é"


def test_the_session_reads_in_time_order_with_links_to_each_trace(expert_client, project, conversation):
    response = expert_client.get(url("s/1%20%C3%A9"))
    assert response.status_code == 200
    body = response.content.decode()
    assert body.index("question 0") < body.index("question 1") < body.index("question 2")
    assert "elsewhere" not in body
    assert "3 traces" in body
    for i in range(3):
        assert reverse("trace_detail", args=["acme", f"turn-{i}"]) in body


def test_the_trace_page_links_its_conversation_with_its_size(expert_client, project, conversation):
    body = expert_client.get(reverse("trace_detail", args=["acme", "turn-1"])).content.decode()
    assert reverse("conversation_detail", args=["acme"]) + "?session=s%2F1%20%C3%A9" in body
    assert "· 3 traces" in body


def test_untrusted_text_is_escaped(expert_client, project):
    trace = make_trace(project=project, external_id="x", input="<script>alert(1)</script>", output="ok")
    Trace.objects.filter(pk=trace.pk).update(session_id="<b>s</b>")
    body = expert_client.get(url("%3Cb%3Es%3C/b%3E")).content.decode()
    assert "<script>alert(1)" not in body and "&lt;script&gt;" in body
    assert "<b>s</b>" not in body


def test_missing_or_unknown_sessions_and_outsiders(expert_client, outsider_client, project, conversation):
    assert expert_client.get(reverse("conversation_detail", args=["acme"])).status_code == 400
    assert expert_client.get(url("nope")).status_code == 404
    assert outsider_client.get(url("s/1%20%C3%A9")).status_code == 404


def test_a_long_conversation_shows_its_first_page_and_says_how_many(project):
    for i in range(5):
        trace = make_trace(project=project, external_id=f"long-{i}", output=f"a{i}")
        Trace.objects.filter(pk=trace.pk).update(session_id="long")
    conversation = conversation_read(project=project, session_id="long", limit=3)
    assert [t.external_id for t in conversation.traces] == ["long-0", "long-1", "long-2"]
    assert conversation.total == 5


def test_the_read_uses_the_conversation_index(project, conversation):
    query = Trace.objects.filter(project=project, session_id="s/1 é").exclude(session_id="")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            plan = query.order_by("occurred_at", "id").explain()
        finally:
            cursor.execute("SET enable_seqscan = on")
    assert "trace_conversation" in plan
