"""Guardrails: marking an aligned assertion check guardrail-ready (on the evidence of its dev and test runs), and
`POST /api/v1/projects/{slug}/guardrails/check` running the project's marked checks on one answer."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from annotation.services import api_token_create
from judges import guardrails
from judges.guardrails import (
    GuardrailRefused,
    guardrail_bar,
    guardrail_bar_set,
    guardrail_mark,
    guardrail_readiness,
    guardrail_revoke,
    project_guardrails,
)
from judges.models import GuardrailMark
from judges.services import judge_create, judge_version_create
from tests.factories import make_criterion, make_project, make_user
from tests.judges.guardrail_fixtures import (
    NO_APOLOGY,
    NO_PHONE,
    SHORT,
    aligned_judge,
    labelled_criterion,
    run_dev_and_test,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def phone(project):
    return aligned_judge(project, criterion="no_phone", name="phone", config=NO_PHONE, bad_output="Call 555-1234.")


@pytest.fixture
def apology(project):
    return aligned_judge(project, criterion="no_apology", name="apology", config=NO_APOLOGY, bad_output="Sorry!")


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="app")[1]


def check(client, token, body, slug="acme", content_type="application/json"):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(
        f"/api/v1/projects/{slug}/guardrails/check",
        raw,
        content_type=content_type,
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )


# --- readiness and marking -------------------------------------------------------------------------------------------


def test_a_check_that_passes_every_expert_pass_on_dev_and_test_is_ready_with_its_intervals(phone):
    readiness = guardrail_readiness(phone.latest_version())
    assert readiness.ready, readiness.reason
    assert readiness.dev_tpr.successes == readiness.dev_tpr.n == 18
    assert readiness.test_tpr.successes == readiness.test_tpr.n == 18
    assert "on test TPR 100% (18/18), 95% interval 81.4%–100%" in readiness.reason


def test_the_expert_marks_a_ready_check_with_the_evidence_on_record(phone, expert):
    mark = guardrail_mark(version=phone.latest_version(), user=expert, comment="blocks leaked numbers")
    assert mark.is_current and mark.marked_by == expert and mark.min_tpr == 0.99
    assert mark.dev_report["tp"] == 18 and mark.test_report["fn"] == 0
    assert mark.dev_run.split == "dev" and mark.test_run.split == "test"


def test_a_check_that_fails_good_answers_is_refused_saying_how_many(project, expert):
    judge = aligned_judge(project, criterion="short", name="short", config=SHORT, bad_output="x" * 30)
    with pytest.raises(GuardrailRefused, match=r"On dev, short v1 has TPR 0% \(0/18\).*fails 18 of the 18 traces"):
        guardrail_mark(version=judge.latest_version(), user=expert)
    assert not GuardrailMark.objects.exists()


def test_a_check_without_a_test_run_is_refused(project, expert):
    criterion = labelled_criterion(project, "no_phone", "Call 555-1234.")
    judge = judge_create(project=project, criterion=criterion, name="phone", kind="assertion", config=NO_PHONE)
    with pytest.raises(GuardrailRefused, match="no finished run on the dev split"):
        guardrail_mark(version=judge.latest_version(), user=expert)


def test_only_assertion_judges_can_be_guardrails(project, phone):
    judge = judge_create(project=project, criterion=phone.criterion, name="ext", kind="external")
    readiness = guardrail_readiness(judge.latest_version())
    assert not readiness.ready and "only assertion checks can be guardrails" in readiness.reason


def test_the_bar_is_the_experts_setting_and_a_stricter_bar_refuses(project, phone, expert):
    assert guardrail_bar(project=project) == 0.99
    with pytest.raises(Exception, match="guardrail min_tpr: must be above 0.5 and below 1"):
        guardrail_bar_set(project=project, min_tpr=1.0)
    guardrail_bar_set(project=project, min_tpr=0.95)
    assert guardrail_bar(project=project) == 0.95
    assert guardrail_mark(version=phone.latest_version(), user=expert).min_tpr == 0.95


def test_marking_a_new_version_ends_the_previous_mark_and_revoking_keeps_the_record(project, phone, expert):
    first = guardrail_mark(version=phone.latest_version(), user=expert)
    with pytest.raises(GuardrailRefused, match="already guardrail-ready"):
        guardrail_mark(version=phone.latest_version(), user=expert)
    v2 = judge_version_create(judge=phone, config={**NO_PHONE, "pattern": r"\d{3}-\d{4,}"})
    run_dev_and_test(phone)
    second = guardrail_mark(version=v2, user=expert)
    first.refresh_from_db()
    assert first.revoked_at is not None and first.revoked_by == expert and second.is_current
    assert guardrail_revoke(version=v2, user=expert) == second
    assert guardrail_revoke(version=v2, user=expert) is None
    assert GuardrailMark.objects.count() == 2 and not GuardrailMark.objects.filter(revoked_at=None).exists()


# --- the route -------------------------------------------------------------------------------------------------------


def test_an_answer_breaking_a_guardrail_is_not_allowed_and_names_each_violation(client, phone, apology, token, expert):
    for judge in (phone, apology):
        guardrail_mark(version=judge.latest_version(), user=expert)
    response = check(client, token, {"output": "Sorry, call 555-1234.", "input": "help"})
    assert response.status_code == 200
    body = response.json()
    assert body["allowed"] is False and body["checks"] == 2 and body["errors"] == []
    # In the order of the criteria (both at position 0 here, so by the check's name).
    assert body["violations"] == [
        {
            "criterion": "no_apology",
            "check": "apology",
            "version": 1,
            "detail": "output contains 'sorry' (forbidden)",
        },
        {
            "criterion": "no_phone",
            "check": "phone",
            "version": 1,
            "detail": r"output matches /\d{3}-\d{4}/ (forbidden)",
        },
    ]
    assert response["Server-Timing"].startswith("guardrails;dur=")
    good = check(client, token, {"output": "Your card is frozen."}).json()
    assert good == {"allowed": True, "violations": [], "errors": [], "checks": 2}


def test_only_marked_checks_run_and_a_revocation_takes_effect_on_the_next_request(
    client, phone, apology, token, expert
):
    guardrail_mark(version=phone.latest_version(), user=expert)
    body = check(client, token, {"output": "Sorry!"}).json()
    assert body == {"allowed": True, "violations": [], "errors": [], "checks": 1}
    guardrail_revoke(version=phone.latest_version(), user=expert)
    assert check(client, token, {"output": "Call 555-1234"}).json()["checks"] == 0


def test_a_project_with_no_guardrails_allows_everything(client, token):
    assert check(client, token, {"output": "anything"}).json() == {
        "allowed": True,
        "violations": [],
        "errors": [],
        "checks": 0,
    }


def test_the_checks_are_prepared_once_and_each_request_costs_one_query_for_them(phone, expert, project):
    guardrail_mark(version=phone.latest_version(), user=expert)
    first = project_guardrails(project_id=project.pk)
    with CaptureQueriesContext(connection) as queries:
        again = project_guardrails(project_id=project.pk)
    assert again is first and len(queries) == 1


def test_tool_call_checks_read_the_messages_sent(client, project, token, expert):
    config = {"check": "tool_not_called", "tool": "close_account"}
    judge = aligned_judge(project, criterion="no_close", name="close", config=config, bad_output="")
    # Every labelled trace has no messages, so the check failed them all: not ready, and never marked.
    assert not guardrail_readiness(judge.latest_version()).ready
    GuardrailMark.objects.create(
        project=project, judge=judge, version=judge.latest_version(), min_tpr=0.99, marked_by=expert
    )
    call = {"id": "c1", "type": "function", "function": {"name": "close_account", "arguments": "{}"}}
    messages = [{"role": "user", "content": "close it"}, {"role": "assistant", "content": None, "tool_calls": [call]}]
    body = check(client, token, {"output": "Done.", "messages": messages}).json()
    assert body["allowed"] is False
    assert body["violations"][0]["detail"] == "close_account was called 1 time (forbidden): messages[1] (c1)"


def test_a_pattern_that_runs_out_of_time_is_an_error_that_does_not_block(client, project, token, expert, settings):
    settings.EVALSTUDIO_REGEX_TIMEOUT_MS = 50
    config = {"check": "regex", "pattern": "(a|aa)+$", "must_match": False}  # backtracks for hours on a…ab
    criterion = make_criterion(project=project, name="evil")
    judge = judge_create(project=project, criterion=criterion, name="evil", kind="assertion", config=config)
    GuardrailMark.objects.create(project=project, judge=judge, version=judge.latest_version(), min_tpr=0.99)
    body = check(client, token, {"output": "a" * 40 + "b"}).json()
    assert body["allowed"] is True and body["violations"] == []
    assert "took longer than 0.05 s" in body["errors"][0]["detail"]


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"input": "x"}, 400, "output: "),
        ({"output": 3}, 400, "output: "),
        ({"output": "x", "outptu": "y"}, 400, "outptu: not a field of a guardrail check"),
        ("{nope", 400, "Malformed JSON"),
        ([], 400, "body: "),
    ],
)
def test_a_bad_body_is_a_400_naming_what_is_wrong(client, token, body, status, detail):
    response = check(client, token, body)
    assert response.status_code == status
    assert detail in response.json()["detail"]


def test_a_body_that_is_not_json_is_a_415(client, token):
    assert check(client, token, "output=x", content_type="text/plain").status_code == 415


def test_no_token_is_a_401_and_another_projects_token_a_404(client, project, phone, expert):
    assert check(client, None, {"output": "x"}).status_code == 401
    other = make_project(slug="other", expert=make_user("other-expert"))
    other_token = api_token_create(project=other, name="app")[1]
    assert check(client, other_token, {"output": "x"}).status_code == 404


def test_a_member_session_may_check_and_an_outsider_gets_404(expert_client, outsider_client, project):
    assert check(expert_client, None, {"output": "x"}).status_code == 200
    assert check(outsider_client, None, {"output": "x"}).status_code == 404


def test_the_route_is_rate_limited_like_the_rest_of_the_api(client, token, settings):
    from core.rates import Rate

    settings.EVALSTUDIO_API_RATE_PER_TOKEN = Rate(2, 86_400)  # a day's window: the three requests never straddle two
    responses = [check(client, token, {"output": "x"}) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert (
        int(responses[2]["Retry-After"]) >= 1
        and "Too many API requests with this token" in responses[2].json()["detail"]
    )


@pytest.fixture(autouse=True)
def _fresh_compiled_checks():
    # The prepared checks live in this process across tests: each test starts without them (its counts are its own).
    guardrails._compiled.clear()
