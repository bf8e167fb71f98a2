"""Guardrails in the browser: the expert marks and revokes on the judge page and sets the guardrail bar; the judges
page says which checks are guardrails and why the others are not; teammates see, outsiders get 404."""

from __future__ import annotations

import pytest

from judges.models import GuardrailBar, GuardrailMark
from tests.judges.guardrail_fixtures import NO_PHONE, SHORT, aligned_judge

pytestmark = pytest.mark.django_db


@pytest.fixture
def phone(project):
    return aligned_judge(project, criterion="no_phone", name="phone", config=NO_PHONE, bad_output="Call 555-1234.")


def mark_url(judge, number=1, action=""):
    return f"/projects/acme/judges/{judge.pk}/versions/{number}/guardrail/{action}"


def test_the_expert_marks_a_ready_version_from_the_judge_page_and_revokes_it(expert_client, phone, expert):
    page = expert_client.get(f"/projects/acme/judges/{phone.pk}/").content.decode()
    assert 'data-guardrail="ready"' in page and "Mark v1 guardrail-ready" in page
    assert "95% interval 81.4%–100%" in page
    response = expert_client.post(mark_url(phone), {"comment": "leaks <b>numbers</b>"}, follow=True)
    mark = GuardrailMark.objects.get()
    assert mark.marked_by == expert and mark.comment == "leaks <b>numbers</b>" and mark.is_current
    page = response.content.decode()
    assert 'data-guardrail="marked"' in page and "leaks &lt;b&gt;numbers&lt;/b&gt;" in page
    expert_client.post(mark_url(phone, action="revoke/"))
    mark.refresh_from_db()
    assert mark.revoked_at is not None and mark.revoked_by == expert
    # The record on the judges page keeps the revoked mark: who, when, on which runs.
    record = expert_client.get("/projects/acme/judges/").content.decode().split(f'data-mark="{mark.pk}"')[1]
    record = record.split("</tr>")[0]
    assert "by expert" in record and "dev 18/18" in record and "test 18/18" in record and "current" not in record


def test_a_version_that_fails_good_answers_shows_why_and_a_forced_post_is_refused(expert_client, project):
    judge = aligned_judge(project, criterion="short", name="short", config=SHORT, bad_output="x" * 30)
    page = expert_client.get(f"/projects/acme/judges/{judge.pk}/").content.decode()
    assert 'data-guardrail="not-ready"' in page and "fails 18 of the 18 traces the expert passed" in page
    response = expert_client.post(mark_url(judge), follow=True)
    assert "was not marked guardrail-ready" in response.content.decode()
    assert not GuardrailMark.objects.exists()


def test_teammates_see_but_only_the_expert_marks_and_outsiders_get_404(teammate_client, outsider_client, phone):
    page = teammate_client.get(f"/projects/acme/judges/{phone.pk}/").content.decode()
    assert 'data-guardrail="ready"' in page and "Mark v1 guardrail-ready" not in page
    assert teammate_client.post(mark_url(phone)).status_code == 403
    assert outsider_client.post(mark_url(phone)).status_code == 404
    assert outsider_client.post("/projects/acme/judges/guardrail-bar/", {"min_tpr": "0.95"}).status_code == 404
    assert not GuardrailMark.objects.exists()


def test_the_judges_page_lists_each_assertion_check_as_guardrail_or_why_not(expert_client, project, phone):
    aligned_judge(project, criterion="short", name="short", config=SHORT, bad_output="x" * 30)
    expert_client.post(mark_url(phone))
    page = expert_client.get("/projects/acme/judges/").content.decode()
    assert 'id="guardrails"' in page and "guardrail bar: TPR ≥ 99%</strong>" in page
    assert 'data-guardrail="marked"' in page
    assert "not ready: On dev, short v1 has TPR 0% (0/18)" in page


def test_the_expert_sets_the_guardrail_bar_and_a_bad_value_is_named(expert_client, teammate_client, project):
    response = expert_client.post("/projects/acme/judges/guardrail-bar/", {"min_tpr": "99.5%"}, follow=True)
    assert GuardrailBar.objects.get(project=project).min_tpr == pytest.approx(0.995)
    assert "guardrail bar: TPR ≥ 99.5%</strong>" in response.content.decode()
    expert_client.post("/projects/acme/judges/guardrail-bar/", {"min_tpr": "95%"})
    assert GuardrailBar.objects.get(project=project).min_tpr == pytest.approx(0.95)
    response = expert_client.post("/projects/acme/judges/guardrail-bar/", {"min_tpr": "1.5"}, follow=True)
    assert "Guardrail bar not changed. min_tpr: must be above 0.5 and below 1" in response.content.decode()
    assert teammate_client.post("/projects/acme/judges/guardrail-bar/", {"min_tpr": "0.9"}).status_code == 403
    assert GuardrailBar.objects.get(project=project).min_tpr == pytest.approx(0.95)
