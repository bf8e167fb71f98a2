"""The loop's dashboard (issue 15 §4, §5): each fact with fixed dates, the maturity levels 1→4, the coverage table,
the project and failure-modes pages, the REST route and the weekly digest to a loopback receiver."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from annotation import ingest
from annotation.models import FailureMode, ReviewSession, ReviewSessionTrace
from annotation.services import DomainError, api_token_create, criterion_update
from judges.digest import digests_send_due
from judges.loop import coverage, loop_facts, loop_payload
from judges.loop_settings import loop_cadence_set
from judges.models import GuardrailMark, JudgeRun, LoopCadence, Promotion
from judges.services import judge_create
from monitoring.models import MonitorJudgment
from monitoring.services import monitoring_drain, sampling_rate_set
from suites.models import SuiteRun
from tests.factories import code_note, make_criterion, make_label, make_note, make_project, make_trace
from tests.listener import Listener
from tests.monitoring.helpers import jsonl, production, promoted_judge

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 11, 2, 9, tzinfo=UTC)  # a Monday
NO_SORRY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
MEETS = {"tp": 40, "fn": 0, "tn": 40, "fp": 0}
BELOW_BAR = {"tp": 5, "fn": 5, "tn": 5, "fp": 5}


def session_of(project, user, *, strategy, n, reviewed_at, notes=True, prefix="s") -> ReviewSession:
    """A review session of n traces, each reviewed at `reviewed_at` (and noted, when `notes`)."""
    session = ReviewSession.objects.create(
        project=project, name=f"{prefix} session", strategy=strategy, size=n, created_by=user, created_at=reviewed_at
    )
    for i in range(n):
        trace = make_trace(project=project, external_id=f"{prefix}-{i}", reviewed_at=reviewed_at)
        ReviewSessionTrace.objects.create(session=session, trace=trace, position=i)
        if notes and i == 0:
            note = make_note(trace=trace, author=user, text="Invents a number")
            note.created_at = reviewed_at
            note.save(update_fields=["created_at"])
    return session


def mode(project, name: str, created_at: datetime = DAY) -> FailureMode:
    return FailureMode.objects.create(project=project, name=name, created_at=created_at)


def run(version, split: str, report: dict, at: datetime = DAY) -> JudgeRun:
    return JudgeRun.objects.create(
        version=version, split=split, status=JudgeRun.Status.DONE, report=report, finished_at=at
    )


# --- the cadence ----------------------------------------------------------------------------------------------------


def test_the_last_cycle_is_a_session_of_100_reviewed_traces_with_notes_and_the_next_is_due_3_weeks_later(
    project, expert
):
    session_of(project, expert, strategy="random", n=100, reviewed_at=DAY, prefix="cycle")
    # Neither a larger session without notes nor a session of 99 is a cycle.
    session_of(project, expert, strategy="random", n=120, reviewed_at=DAY + timedelta(days=3), notes=False, prefix="a")
    session_of(project, expert, strategy="random", n=99, reviewed_at=DAY + timedelta(days=4), prefix="b")
    early = loop_facts(project=project, now=DAY + timedelta(days=20))
    assert early.cycle.session.name == "cycle session"
    assert (early.cycle.ran_at, early.cycle.reviewed) == (DAY, 100)
    assert (early.cycle_due.is_due, early.cycle_due.due_at) == (False, DAY + timedelta(days=21))
    assert loop_facts(project=project, now=DAY + timedelta(days=21)).cycle_due.is_due is True


def test_no_cycle_yet_is_due_now_and_every_failure_mode_is_new(project, expert):
    mode(project, "invents numbers")
    facts = loop_facts(project=project, now=DAY)
    assert facts.cycle is None and facts.cycle_due.is_due is True
    assert [m.name for m in facts.new_failure_modes] == ["invents numbers"]


def test_new_failure_modes_are_those_created_after_the_last_cycle(project, expert):
    session_of(project, expert, strategy="random", n=100, reviewed_at=DAY, prefix="cycle")
    mode(project, "old", DAY - timedelta(days=1))
    mode(project, "new", DAY + timedelta(days=2))
    retired = mode(project, "retired", DAY + timedelta(days=2))
    retired.retired_at = DAY + timedelta(days=3)
    retired.save()
    facts = loop_facts(project=project, now=DAY + timedelta(days=5))
    assert [m.name for m in facts.new_failure_modes] == ["new"]


def test_the_cadence_settings_change_the_cycle_size_and_length(project, expert):
    session_of(project, expert, strategy="stratified", n=30, reviewed_at=DAY, prefix="small")
    assert loop_facts(project=project, now=DAY).cycle is None
    loop_cadence_set(project=project, cycle_days=14, cycle_size=30, outlier_days=7, outlier_size=10, user=expert)
    facts = loop_facts(project=project, now=DAY + timedelta(days=14))
    assert facts.cycle.reviewed == 30 and facts.cycle_due.is_due is True
    assert loop_payload(facts)["settings"] == {
        "cycle_days": 14,
        "cycle_size": 30,
        "outlier_days": 7,
        "outlier_size": 10,
    }


def test_this_weeks_outlier_review_is_done_by_an_outlier_session_of_at_least_10_traces(project, expert):
    assert loop_facts(project=project, now=DAY).outlier_done is False
    # A random session of 10 is not an outlier review; nor is an outlier session of 9.
    session_of(project, expert, strategy="random", n=10, reviewed_at=DAY, prefix="r")
    session_of(project, expert, strategy="longest", n=9, reviewed_at=DAY, prefix="l")
    assert loop_facts(project=project, now=DAY + timedelta(days=1)).outlier_done is False
    session_of(project, expert, strategy="rare_metadata", n=12, reviewed_at=DAY, prefix="m")
    facts = loop_facts(project=project, now=DAY + timedelta(days=6))
    assert facts.outlier_done is True and facts.outlier_review.reviewed == 12
    assert loop_facts(project=project, now=DAY + timedelta(days=7)).outlier_done is False


def test_bad_cadence_settings_are_refused_naming_the_setting(project, expert):
    with pytest.raises(DomainError, match=r"^cycle_size: expected a whole number from 1 to 100000, got 0 for project"):
        loop_cadence_set(project=project, cycle_days=21, cycle_size=0, outlier_days=7, outlier_size=10)
    with pytest.raises(DomainError, match=r"^digest_url: expected an http:// or https:// URL, got 'ftp://x'"):
        loop_cadence_set(
            project=project, cycle_days=21, cycle_size=100, outlier_days=7, outlier_size=10, digest_url="ftp://x"
        )
    with pytest.raises(DomainError, match=r"^digest_url: the webhook is refused"):
        loop_cadence_set(
            project=project,
            cycle_days=21,
            cycle_size=100,
            outlier_days=7,
            outlier_size=10,
            digest_url="http://127.0.0.1:9/hook",
        )
    assert not LoopCadence.objects.exists()


# --- judges: status, unaligned criteria, stale versions, coverage ---------------------------------------------------


@pytest.fixture
def taxonomy(project, expert):
    """Modes A (3 failing traces), B (1) and C (none coded); criteria on A (promoted), B (judge below the bar), C
    (aligned on dev, but nothing observed behind it), and one on no mode (no judge); one failing trace uncoded."""
    a, b = mode(project, "invents numbers"), mode(project, "rude tone")
    c = mode(project, "never seen")
    on_a = make_criterion(project=project, name="numbers", failure_mode=a, position=1)
    on_b = make_criterion(project=project, name="tone", failure_mode=b, position=2)
    on_c = make_criterion(project=project, name="seen", failure_mode=c, position=3)
    loose = make_criterion(project=project, name="loose", position=4)
    for i, coded in enumerate([a, a, a, b, None]):
        trace = make_trace(project=project, external_id=f"fail-{i}", reviewed_at=DAY)
        make_label(trace=trace, criterion=loose, verdict="fail")
        if coded is not None:
            code_note(make_note(trace=trace, author=expert), coded)
    promoted = judge_create(project=project, criterion=on_a, name="no-sorry", kind="assertion", config=NO_SORRY)
    run(promoted.latest_version(), "dev", MEETS)
    Promotion.objects.create(criterion=on_a, version=promoted.latest_version(), min_tpr=0.9, min_tnr=0.9)
    below = judge_create(project=project, criterion=on_b, name="tone-check", kind="assertion", config=NO_SORRY)
    run(below.latest_version(), "dev", BELOW_BAR)
    aligned = judge_create(project=project, criterion=on_c, name="seen-check", kind="assertion", config=NO_SORRY)
    run(aligned.latest_version(), "dev", MEETS)
    return {"a": a, "b": b, "c": c, "on_a": on_a, "on_b": on_b, "on_c": on_c, "loose": loose, "seen": aligned}


def test_the_coverage_table_lists_modes_in_pareto_order_with_each_criterions_judge_status(project, taxonomy):
    table = coverage(project=project)
    assert [(m.name, m.trace_count, [(i.criterion.name, i.status) for i in m.criteria]) for m in table.modes] == [
        ("invents numbers", 3, [("numbers", "promoted")]),
        ("rude tone", 1, [("tone", "below the bar")]),
        ("never seen", 0, [("seen", "aligned on dev")]),
    ]
    assert [m.covered for m in table.modes] == [True, False, False]
    # 3 of the 5 failing traces carry a mode a promoted judge checks (the uncoded one is not covered).
    assert (table.covered_failing_traces, table.failing_traces, table.covered_share) == (3, 5, 0.6)
    assert [(i.criterion.name, i.status) for i in table.unobserved] == [("seen", "aligned on dev"), ("loose", "none")]


def test_a_guardrail_mark_is_the_strongest_status(project, taxonomy):
    judge = taxonomy["seen"]
    GuardrailMark.objects.create(project=project, judge=judge, version=judge.latest_version(), min_tpr=0.99)
    statuses = {i.criterion.name: i.status for i in loop_facts(project=project, now=DAY).statuses}
    assert statuses == {"numbers": "promoted", "tone": "below the bar", "seen": "guardrail-ready", "loose": "none"}


def test_criteria_without_an_aligned_judge_and_stale_judges_are_reported(project, taxonomy, expert):
    facts = loop_facts(project=project, now=DAY + timedelta(days=1))
    assert [(i.criterion.name, i.status) for i in facts.unaligned] == [("tone", "below the bar"), ("loose", "none")]
    assert facts.stale == []
    # The promoted judge's criterion gets a new definition: its version was made under the earlier one.
    criterion_update(criterion=taxonomy["on_a"], name="numbers", definition="Every number is sourced.",
                     failure_mode=taxonomy["a"], user=expert)  # fmt: skip
    stale = loop_facts(project=project, now=DAY + timedelta(days=1)).stale
    assert [(s.criterion, s.judge, s.version, s.why) for s in stale] == [("numbers", "no-sorry", 1, "promoted")]
    assert "made under definition v1" in stale[0].changes[-1]


def test_the_failure_modes_page_shows_the_coverage_panel_and_the_mode_page_the_make_a_criterion_button(
    project, taxonomy, expert_client, outsider_client
):
    page = expert_client.get(f"/projects/{project.slug}/failure-modes/").content.decode()
    assert 'id="coverage-table"' in page
    assert 'numbers: <span class="badge">promoted</span>' in page
    assert "no observed failure behind this criterion" in page
    assert "<strong>60%</strong> of failing traces" in page
    mode_page = expert_client.get(f"/projects/{project.slug}/failure-modes/{taxonomy['b'].pk}/").content.decode()
    assert f"/criteria/new/?mode={taxonomy['b'].pk}" in mode_page
    FailureMode.objects.filter(pk=taxonomy["b"].pk).update(definition="Curt or sarcastic replies.")
    form = expert_client.get(f"/projects/{project.slug}/criteria/new/?mode={taxonomy['b'].pk}").content.decode()
    assert "Curt or sarcastic replies." in form
    assert outsider_client.get(f"/projects/{project.slug}/failure-modes/").status_code == 404


def test_the_project_page_is_the_loops_dashboard_and_escapes_names(project, expert, expert_client, teammate_client):
    mode(project, "<script>alert(1)</script>")
    page = expert_client.get(f"/projects/{project.slug}/").content.decode()
    assert 'id="loop"' in page and "Maturity: <strong>level 0</strong>" in page
    assert "No error-analysis cycle yet" in page and "not done" in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page
    assert 'id="loop-settings"' in page
    # Only the expert sets the cadence.
    assert 'id="loop-settings"' not in teammate_client.get(f"/projects/{project.slug}/").content.decode()
    response = teammate_client.post(f"/projects/{project.slug}/loop/cadence/", {"cycle_days": "14"})
    assert response.status_code == 403
    response = expert_client.post(
        f"/projects/{project.slug}/loop/cadence/",
        {"cycle_days": "14", "cycle_size": "50", "outlier_days": "7", "outlier_size": "15", "digest_url": ""},
    )
    assert response.status_code == 302
    assert LoopCadence.objects.values_list("cycle_days", "cycle_size", "outlier_size").get() == (14, 50, 15)


# --- maturity 1 → 4 -------------------------------------------------------------------------------------------------


def test_the_maturity_level_climbs_from_manual_review_to_continuous_evaluation(project, expert):
    now = datetime.now(UTC)
    assert loop_facts(project=project, now=now).maturity.level == 0
    make_trace(project=project, external_id="seen", reviewed_at=now - timedelta(days=3))
    first = loop_facts(project=project, now=now).maturity
    assert (first.level, first.evidence[1]) == (1, "1 trace reviewed by hand")
    assert "regression suite" in first.next_step
    SuiteRun.objects.create(
        project=project, name="v1.2", golden_version=1, status=SuiteRun.Status.DONE, finished_at=now - timedelta(days=2)
    )
    second = loop_facts(project=project, now=now).maturity
    assert second.level == 2 and second.evidence[2].startswith("regression suite run “v1.2” finished")
    sampling_rate_set(project=project, rate=1.0)
    promoted_judge(project)
    ingest.import_stream(project=project, stream=jsonl(production(8, prefix="prod")))
    monitoring_drain(project=project)
    assert MonitorJudgment.objects.filter(project=project).exclude(verdict="").count() == 8
    MonitorJudgment.objects.filter(project=project).update(created_at=now - timedelta(days=2))
    third = loop_facts(project=project, now=now).maturity
    assert third.level == 3 and third.next_step.startswith("Keep monitoring judging")
    MonitorJudgment.objects.filter(project=project).update(created_at=now - timedelta(hours=3))
    fourth = loop_facts(project=project, now=now).maturity
    assert (fourth.level, fourth.evidence[4]) == (4, "monitoring judged production traces in the last day")


def test_a_suite_that_failed_to_run_is_not_a_regression_suite(project):
    make_trace(project=project, external_id="seen", reviewed_at=DAY)
    SuiteRun.objects.create(project=project, golden_version=1, status=SuiteRun.Status.FAILED, finished_at=DAY)
    assert loop_facts(project=project, now=DAY + timedelta(days=1)).maturity.level == 1


# --- REST -----------------------------------------------------------------------------------------------------------


def test_the_cadence_route_gives_the_same_facts_and_is_in_the_openapi_document(project, taxonomy, client):
    token = api_token_create(project=project, name="ci")[1]
    body = client.get(f"/api/v1/projects/{project.slug}/cadence", headers={"authorization": f"Bearer {token}"}).json()
    assert body["project"] == project.slug
    assert body["cycle"]["due"] is True and body["cycle"]["last_at"] is None
    assert body["coverage"]["covered_share"] == 0.6
    assert body["coverage"]["modes"][0] == {
        "id": taxonomy["a"].pk,
        "name": "invents numbers",
        "trace_count": 3,
        "note_count": 3,
        "share_of_failing_traces": 0.6,
        "covered": True,
        "criteria": [{"criterion": "numbers", "status": "promoted"}],
    }
    assert body["coverage"]["unobserved_criteria"][1] == {
        "criterion": "loose",
        "status": "none",
        "flag": "no observed failure behind this criterion",
    }
    assert body["maturity"]["level"] == 1
    assert "/api/v1/projects/{slug}/cadence" in client.get("/api/v1/openapi.json").json()["paths"]


def test_the_cadence_route_refuses_outsiders_and_other_projects_tokens(project, client, outsider_client):
    assert client.get(f"/api/v1/projects/{project.slug}/cadence").status_code == 401
    other = make_project(slug="other")
    token = api_token_create(project=other, name="ci")[1]
    wrong = client.get(f"/api/v1/projects/{project.slug}/cadence", headers={"authorization": f"Bearer {token}"})
    assert wrong.status_code in (403, 404)
    assert outsider_client.get(f"/api/v1/projects/{project.slug}/cadence").status_code in (403, 404)


# --- the weekly digest ----------------------------------------------------------------------------------------------


@pytest.fixture
def _loopback_allowed(settings) -> None:
    settings.EVALSTUDIO_OUTBOUND_ALLOWLIST = ["127.0.0.1"]


@pytest.mark.usefixtures("_loopback_allowed")
def test_the_weekly_digest_is_posted_signed_once_a_week(project, expert):
    with Listener() as listener:
        cadence = loop_cadence_set(
            project=project, cycle_days=21, cycle_size=100, outlier_days=7, outlier_size=10, digest_url=listener.url
        )
        assert digests_send_due(now=DAY) == 1
        assert digests_send_due(now=DAY + timedelta(days=6)) == 0  # not due again within the week
        assert digests_send_due(now=DAY + timedelta(days=7)) == 1
    assert len(listener.requests) == 2
    sent = listener.requests[0]
    payload = json.loads(sent.body)
    assert payload["event"] == "loop.digest" and payload["project"] == project.slug
    assert payload["as_of"] == DAY.isoformat() and payload["cycle"]["due"] is True
    assert set(payload) >= {"maturity", "coverage", "stale_judges", "criteria_without_aligned_judge"}
    signed = sent.headers["x-evalstudio-timestamp"].encode() + b"." + sent.body
    expected = hmac.new(cadence.digest_secret.encode(), signed, hashlib.sha256).hexdigest()
    assert sent.headers["x-evalstudio-signature"] == f"v1={expected}"
    cadence.refresh_from_db()
    assert (cadence.digest_sent_at, cadence.digest_status) == (DAY + timedelta(days=7), 200)


@pytest.mark.usefixtures("_loopback_allowed")
def test_a_failed_digest_is_recorded_and_tried_again_at_the_next_beat(project):
    with Listener(status=500) as listener:
        loop_cadence_set(
            project=project, cycle_days=21, cycle_size=100, outlier_days=7, outlier_size=10, digest_url=listener.url
        )
        assert digests_send_due(now=DAY) == 0
        cadence = LoopCadence.objects.get()
        assert (cadence.digest_sent_at, cadence.digest_status) == (None, 500)
        assert cadence.digest_error == "delivery failed: HTTP 500"
        listener.status = 200
        assert digests_send_due(now=DAY + timedelta(hours=1)) == 1
    assert len(listener.requests) == 2


def test_no_webhook_no_digest_and_the_beat_sends_the_due_ones(project, settings):
    assert digests_send_due(now=DAY) == 0
    assert settings.CELERY_BEAT_SCHEDULE["loop-digests"]["task"] == "judges.tasks.loop_digests_task"


def test_the_dashboard_reads_a_fixed_number_of_queries_whatever_the_number_of_judges(project, taxonomy):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            loop_payload(loop_facts(project=project, now=DAY))
        return len(captured)

    before = queries()
    for i in range(4):
        criterion = make_criterion(project=project, name=f"more-{i}", failure_mode=taxonomy["a"])
        judge = judge_create(project=project, criterion=criterion, name=f"more-{i}", kind="assertion", config=NO_SORRY)
        run(judge.latest_version(), "dev", MEETS)
        Promotion.objects.create(criterion=criterion, version=judge.latest_version(), min_tpr=0.9, min_tnr=0.9)
    assert queries() == before


@pytest.mark.usefixtures("_loopback_allowed")
def test_the_beats_task_sends_a_due_digest_and_is_safe_to_run_twice(project):
    from judges.tasks import loop_digests_task

    with Listener() as listener:
        loop_cadence_set(
            project=project, cycle_days=21, cycle_size=100, outlier_days=7, outlier_size=10, digest_url=listener.url
        )
        assert loop_digests_task.apply().get() == 1
        assert loop_digests_task.apply().get() == 0
    assert len(listener.requests) == 1
