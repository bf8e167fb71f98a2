"""Critique quality on the review page: each criterion's critiqued labels counted toward the 50–100 the method asks
for, and a nudge (never a refusal) when a fail critique is too terse to learn the failure from."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from annotation.models import Label, Trace
from annotation.selectors import critiqued_label_counts
from tests.factories import make_criterion, make_label, make_trace

pytestmark = pytest.mark.django_db
HTMX = {"HTTP_HX_REQUEST": "true"}


def _count_text(html: str, criterion) -> str:
    block = html.split(f'id="verdict-{criterion.pk}"', 1)[1]
    found = re.search(r'<span class="critique-count[^"]*"[^>]*>(.*?)</span>\s*(?:<p|</div>)', block, re.S)
    assert found, "no critique count for the criterion"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def _save(client, trace, criterion, **data) -> str:
    url = reverse("label_save", args=[trace.project.slug, trace.pk, criterion.pk])
    response = client.post(url, data, **HTMX)
    assert response.status_code == 200
    return response.content.decode()


def test_critiqued_labels_are_counted_per_criterion_leaving_out_blank_critiques(project):
    tone = make_criterion(project=project, name="tone")
    facts = make_criterion(project=project, name="facts")
    for critique in ("Curt.", "No greeting at all.", "Fine tone.", "", "   \n"):
        make_label(trace=make_trace(project=project), criterion=tone, critique=critique)
    make_label(trace=make_trace(project=project), criterion=facts, critique="Wrong date.")
    assert critiqued_label_counts(project=project) == {tone.pk: 3, facts.pk: 1}


def test_the_review_page_counts_each_criterions_critiques_toward_fifty_and_the_count_follows_a_save(
    project, expert_client
):
    tone = make_criterion(project=project, name="tone")
    facts = make_criterion(project=project, name="facts")
    for index in range(3):
        make_label(trace=make_trace(project=project), criterion=tone, critique=f"Critique number {index}.")
    traces = Trace.objects.bulk_create(
        Trace(project=project, external_id=f"bulk-{i}", output="Answer.", shuffle_key=i) for i in range(52)
    )
    Label.objects.bulk_create(
        Label(trace=t, criterion=facts, verdict="pass", critique="Cites the source.", author=project.expert)
        for t in traces
    )
    trace = make_trace(project=project)
    page = expert_client.get(reverse("trace_detail", args=[project.slug, trace.external_id])).content.decode()
    assert _count_text(page, tone) == "3 critiqued · 47 more to 50"
    assert _count_text(page, facts) == "52 critiqued · enough (50–100)"
    fragment = _save(expert_client, trace, tone, verdict="pass", critique="Warm and to the point.")
    assert _count_text(fragment, tone) == "4 critiqued · 46 more to 50"


def test_a_terse_fail_critique_is_saved_with_a_nudge(project, expert_client):
    tone = make_criterion(project=project, name="tone")
    trace = make_trace(project=project)
    fragment = _save(expert_client, trace, tone, verdict="fail", critique="")
    assert "A fail without a critique: say what is wrong and where (8 words or more)" in fragment
    fragment = _save(expert_client, trace, tone, verdict="fail", critique="Too curt.")
    assert "A fail critique of 2 words: say what is wrong and where" in fragment
    assert "status-saved" in fragment
    label = Label.objects.get(trace=trace, criterion=tone)
    assert (label.verdict, label.critique) == ("fail", "Too curt.")
    # Eight words, or a pass of any length, needs no nudge.
    fragment = _save(
        expert_client, trace, tone, verdict="fail", critique="Opens without a greeting and ends on a refusal."
    )
    assert "critique-nudge" not in fragment
    assert "critique-nudge" not in _save(expert_client, trace, tone, verdict="pass", critique="Fine.")


def test_the_nudge_shows_on_the_page_for_a_terse_fail_but_not_to_teammates(project, expert_client, teammate_client):
    tone = make_criterion(project=project, name="tone")
    trace = make_trace(project=project)
    make_label(trace=trace, criterion=tone, verdict="fail", critique="Rude.")
    url = reverse("trace_detail", args=[project.slug, trace.external_id])
    assert "A fail critique of 1 word:" in expert_client.get(url).content.decode()
    assert "critique-nudge" not in teammate_client.get(url).content.decode()
