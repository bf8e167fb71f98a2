"""A calibration rater labels a sample of the expert's traces blind; κ between the two per criterion is shown, and
the rater's labels feed nothing (issue 15 §1)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from annotation.calibration import calibration_next, calibration_progress, calibration_submit, rater_invite
from annotation.models import Label, RaterLabel
from annotation.rereviews import Answer
from annotation.services import DomainError, criterion_create, label_submit
from judges.reliability import rater_agreement
from tests.factories import make_trace

pytestmark = pytest.mark.django_db

SECRET = "The expert's critique, never shown to the rater."


@pytest.fixture
def criterion(project, expert):
    return criterion_create(project=project, name="no_apology", definition="Fail when it apologises.", user=expert)


@pytest.fixture
def labelled(project, expert, criterion):
    traces = []
    for i in range(10):
        trace = make_trace(project=project, external_id=f"t-{i}", output=f"Answer number {i}.")
        label_submit(
            trace=trace, criterion=criterion, verdict="fail" if i < 4 else "pass", critique=SECRET, user=expert
        )
        traces.append(trace)
    return traces


def test_only_the_expert_invites_a_member_other_than_themself(project, expert, teammate, outsider, labelled):
    with pytest.raises(DomainError, match="Only the project's expert"):
        rater_invite(project=project, expert=teammate, user=teammate)
    with pytest.raises(DomainError, match="cannot be their own calibration rater"):
        rater_invite(project=project, expert=expert, user=expert)
    with pytest.raises(DomainError, match="is not a member"):
        rater_invite(project=project, expert=expert, user=outsider)
    rater = rater_invite(project=project, expert=expert, user=teammate, sample_size=6)
    assert calibration_progress(rater=rater) == (0, 6)


def test_the_rater_labels_the_sample_blind_and_kappa_compares_the_two(
    project, expert, teammate, criterion, labelled, teammate_client
):
    rater_invite(project=project, expert=expert, user=teammate, sample_size=10)
    page = teammate_client.get(reverse("project_detail", args=[project.slug])).content.decode()
    assert "asked you to label 10 traces blind" in page
    seen = 0
    while True:
        response = teammate_client.get(reverse("calibration", args=[project.slug]))
        html = response.content.decode()
        if "The sample is done" in html:
            break
        assert SECRET not in html and "verdict-badge" not in html  # blind: no label of the expert's on the page
        trace_id = int(html.split('name="trace" value="')[1].split('"')[0])
        expert_verdict = Label.objects.get(trace_id=trace_id).verdict
        # The rater agrees except on the first two traces it sees.
        verdict = expert_verdict if seen >= 2 else ("pass" if expert_verdict == "fail" else "fail")
        teammate_client.post(
            reverse("calibration", args=[project.slug]), {"trace": trace_id, f"verdict-{criterion.pk}": verdict}
        )
        seen += 1
    assert seen == 10 and RaterLabel.objects.count() == 10
    [row] = rater_agreement(project=project)
    assert (row.n, row.agreement) == (10, 0.8)
    assert row.kappa is not None and row.kappa_interval[0] < row.kappa < row.kappa_interval[1]
    html = teammate_client.get(f"/projects/{project.slug}/reliability/").content.decode()
    assert f'data-rater-agreement="{teammate.get_username()}-no_apology"' in html


def test_a_trace_outside_the_sample_or_rated_twice_is_refused(project, expert, teammate, criterion, labelled):
    rater = rater_invite(project=project, expert=expert, user=teammate, sample_size=3)
    in_order = sorted(labelled, key=lambda trace: (trace.shuffle_key, trace.pk))
    first = calibration_next(rater=rater)
    assert first == in_order[0]
    calibration_submit(rater=rater, trace=first, answers={criterion.pk: Answer("pass")})
    with pytest.raises(DomainError, match="already rated"):
        calibration_submit(rater=rater, trace=first, answers={criterion.pk: Answer("pass")})
    with pytest.raises(DomainError, match="is not in your calibration sample"):
        calibration_submit(rater=rater, trace=in_order[3], answers={criterion.pk: Answer("pass")})
    with pytest.raises(DomainError, match="Answer every criterion: no_apology"):
        calibration_submit(rater=rater, trace=in_order[1], answers={})


def test_a_member_who_is_not_a_rater_gets_a_404(project, teammate_client):
    assert teammate_client.get(reverse("calibration", args=[project.slug])).status_code == 404
