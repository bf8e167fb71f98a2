"""After `load_demo`, every stage of the method has content computed by the apps from the demo's data: a promoted
judge on held-out test evidence (its dev run beside it), a golden set, two suite runs of which the second regressed,
judged production traffic with an alert, an LLM judge shadowing the expert's critiques, and pages that show them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import transaction
from django.test.utils import override_settings
from django.utils import timezone

from annotation.models import Criterion, Label, Project, Trace
from demo.generate import DEFAULT_OUT
from demo.services import LLM_JUDGE, PLAIN_JUDGE
from judges.evidence import bar_check
from judges.kinds.llm import ENDPOINT_HELP as LLM_ENDPOINT_HELP
from judges.kinds.llm import prompt_preview
from judges.models import Judge, JudgeRun
from judges.promotions import current_promotions
from judges.selectors import split_key
from judges.splits import split_of
from monitoring.alerts import latest_complete_bucket
from monitoring.models import Alert, AlertRule
from monitoring.selectors import sampled_after
from suites.golden import golden_current_version, golden_entries
from suites.models import SuiteRun
from tests.monitoring.helpers import verdicts_of

BAR = 0.9


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker) -> Iterator[Project]:
    """The demo loaded once for this module, inside a transaction rolled back after its last test (each test runs
    in a savepoint of it, as pytest-django's `db` does)."""
    with django_db_blocker.unblock(), override_settings(DEBUG=True), transaction.atomic():
        call_command("load_demo", stdout=StringIO())
        yield Project.objects.get(slug="demo")
        transaction.set_rollback(True)


@pytest.fixture
def demo_client(demo, db, client):
    client.force_login(User.objects.get(username="demo"))
    return client


def _criterion(project: Project, name: str) -> Criterion:
    return Criterion.objects.get(project=project, name=name)


def _latest_run(version, split: str) -> JudgeRun:
    return JudgeRun.objects.filter(version=version, split=split, status="done").latest("id")


def test_the_plain_text_judge_is_promoted_on_a_test_run_that_meets_the_bar_on_evidence(demo, db):
    criterion = _criterion(demo, "plain_text")
    promotion = current_promotions(project=demo)[criterion.pk]
    assert (promotion.version.judge.name, promotion.version.number) == (PLAIN_JUDGE, 2)
    assert promotion.dev_run.split == "dev" and promotion.dev_run.version_id == promotion.version_id
    dev = promotion.dev_run.report
    assert promotion.dev_report == dev and dev["tpr"] >= BAR and dev["tnr"] >= BAR
    assert dev["tp"] + dev["fn"] > 0 and dev["tn"] + dev["fp"] > 0  # both classes on dev: the rates mean something
    # The evidence is the held-out test run, met with the 95% lower bounds (issue 11), not just the point estimates.
    assert promotion.test_run == _latest_run(promotion.version, "test") and promotion.evidence_split == "test"
    test = promotion.report
    assert test == promotion.test_run.report
    check = bar_check(test, min_tpr=BAR, min_tnr=BAR)
    assert check.meets and check.tpr.low >= BAR and check.tnr.low >= BAR and test["tn"] >= 35
    assert f"TPR {test['tpr']:.0%}, TNR {test['tnr']:.0%} on {test['n']} traces" in promotion.comment
    # v1 (bold only) was measured on dev first and is kept, not promoted.
    first = promotion.version.judge.versions.get(number=1)
    assert _latest_run(first, "dev").report["n"] == dev["n"]
    # The two cheap judges of the broad criteria are measured and not promoted.
    for name in ("grounded", "resolves_request"):
        assert _criterion(demo, name).pk not in current_promotions(project=demo)
    assert JudgeRun.objects.filter(
        version__judge__name="no-promises-or-agent-codes", split="dev", status="done"
    ).exists()


def test_the_golden_set_holds_the_files_members_added_in_one_version_per_reason(demo, db):
    expected = {}
    for line in DEFAULT_OUT.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "golden" in record:
            expected[record["id"]] = record["golden"]["reason"]
    entries = golden_entries(project=demo)
    assert {entry.trace.external_id: entry.reason for entry in entries} == expected
    assert golden_current_version(project=demo) == 3
    assert all(entry.comment and entry.added_by.username == "demo" for entry in entries)


def test_two_suite_runs_and_the_second_regressed_on_plain_text(demo, db):
    first = SuiteRun.objects.get(project=demo, name="1.4.0")
    second = SuiteRun.objects.get(project=demo, name="1.5.0")
    assert first.exit_code == 0 and first.baseline is None
    assert second.exit_code == 1 and second.baseline == first
    (plain,) = [c for c in second.summary["criteria"] if c["criterion"] == "plain_text"]
    assert plain["verdict"] == "regression"
    assert plain["p_value"] < 0.05 and plain["only_baseline_passed"] >= 10 and plain["difference"] < 0
    (before,) = [c for c in first.summary["criteria"] if c["criterion"] == "plain_text"]
    assert before["verdict"] == "pass" and before["pass_rate"] > plain["pass_rate"]
    assert second.summary["cases"] == golden_entries(project=demo).count()
    # The demo's golden set is small and 1.4.0 passes it easily: both runs say so, honestly, without failing.
    size = (
        f"the golden set has {second.summary['cases']} cases, fewer than 100: at a 70% pass rate a criterion's 95% "
        "interval is 36 points wide (50%–86%), too wide to see a regression"
    )
    assert [w[: len(size)] for w in second.summary["warnings"]] == [size]
    assert first.summary["warnings"][0].startswith(size)
    assert first.summary["warnings"][1].startswith(
        f"suite too easy for plain_text: its candidates pass {before['passed']} of {before['judged']} golden cases "
        f"({before['pass_rate']:.1%}), above 90%"
    )


def test_the_suite_pages_show_the_regression_and_the_comparison(demo, demo_client):
    first = SuiteRun.objects.get(project=demo, name="1.4.0")
    second = SuiteRun.objects.get(project=demo, name="1.5.0")
    listing = demo_client.get("/projects/demo/suites/").content.decode()
    assert "1.5.0" in listing and "plain_text: " in listing
    detail = demo_client.get(f"/projects/demo/suites/{second.pk}/").content.decode()
    assert 'data-exit="1"' in detail and "regressed" in detail
    assert '<p class="suite-warning">Warning: the golden set has 27 cases, fewer than 100' in detail
    assert 'data-warnings="2"' in listing and 'data-warnings="1"' in listing  # 1.4.0 is also too easy
    compare = demo_client.get(f"/projects/demo/suites/compare/?a={first.pk}&b={second.pk}").content.decode()
    assert "1 regressed" in compare and "1.5.0 regresses against 1.4.0" in compare


def test_monitoring_judged_the_sample_and_an_alert_fired_on_yesterday(demo, db):
    promotion = current_promotions(project=demo)[_criterion(demo, "plain_text").pk]
    sampled, _ = sampled_after(project=demo, after_id=0, limit=1_000_000)
    judged = verdicts_of(promotion.version)
    assert sorted(judged.values_list("trace_id", flat=True)) == sampled and len(sampled) > 100
    assert not judged.filter(verdict="").exists()
    rule = AlertRule.objects.get(project=demo)
    assert rule.state == AlertRule.State.FIRING
    alert = Alert.objects.get(rule=rule)
    start, end = latest_complete_bucket("day", timezone.now())
    # Evaluated at load time: unless this test runs past midnight UTC after loading, that is yesterday.
    assert end - alert.bucket_start in (timedelta(days=1), timedelta(days=2))
    assert alert.is_open and alert.judged >= rule.min_sample and alert.high < rule.threshold
    in_bucket = judged.filter(occurred_at__gte=alert.bucket_start, occurred_at__lt=alert.bucket_end)
    assert (in_bucket.count(), in_bucket.filter(verdict="pass").count()) == (alert.judged, alert.passes)


def test_the_monitoring_pages_show_the_alert(demo, demo_client):
    alert = Alert.objects.get(project=demo)
    overview = demo_client.get("/projects/demo/monitoring/").content.decode()
    assert "plain_text" in overview and f"/projects/demo/monitoring/alerts/{alert.pk}/" in overview
    page = demo_client.get(f"/projects/demo/monitoring/alerts/{alert.pk}/")
    assert page.status_code == 200
    assert alert.judged - alert.passes == len(re.findall(r"/projects/demo/traces/hb-\d+/", page.content.decode()))


def test_the_llm_judges_prompt_preview_shadows_the_experts_train_critiques(demo, demo_client):
    judge = Judge.objects.get(project=demo, name=LLM_JUDGE)
    version = judge.latest_version()
    examples = version.config["examples"]
    # Six when the train split holds six labelled traces (it nearly always does: 20% of about 60).
    assert 1 <= len(examples) <= 6
    key = split_key(judge.criterion)
    assert {split_of(key, external_id) for external_id in examples} == {"train"}
    critiques = dict(
        Label.objects.filter(criterion=judge.criterion, trace__external_id__in=examples).values_list(
            "trace__external_id", "critique"
        )
    )
    # The prompt for a dev trace, one the judge is measured on.
    labelled = Label.objects.filter(criterion=judge.criterion).select_related("trace").order_by("trace_id")
    target = next(label.trace for label in labelled if split_of(key, label.trace.external_id) == "dev")
    messages = prompt_preview(version=version, trace=target)
    shadowed = [json.loads(m["content"])["reasoning"] for m in messages if m["role"] == "assistant"]
    assert shadowed == [critiques[external_id] for external_id in examples]
    page = demo_client.get(
        f"/projects/demo/judges/{judge.pk}/versions/{version.number}/preview/?trace={target.external_id}"
    )
    assert page.status_code == 200
    assert page.content.decode().count('class="card prompt-message"') == len(messages)


def test_without_an_endpoint_the_llm_judges_run_button_says_how_to_point_at_a_server(demo, demo_client, settings):
    settings.OPENAI_BASE_URL = settings.OPENAI_API_KEY = ""
    judge = Judge.objects.get(project=demo, name=LLM_JUDGE)
    blocked = f'id="run-blocked-{judge.pk}"'
    for path in ("/projects/demo/judges/", f"/projects/demo/judges/{judge.pk}/"):
        html = demo_client.get(path).content.decode()
        assert blocked in html, path
        assert "OPENAI_BASE_URL=http://127.0.0.1:11434/v1" in html.split(blocked, 1)[1].split("</div>", 1)[0]
    # A run asked for anyway is refused now, with the same advice, instead of failing later on the worker.
    runs = JudgeRun.objects.count()
    response = demo_client.post(
        f"/projects/demo/judges/{judge.pk}/runs/", {"version": "1", "split": "dev"}, follow=True
    )
    assert JudgeRun.objects.count() == runs
    assert LLM_ENDPOINT_HELP in [str(message) for message in response.context["messages"]][0]
    # The other judges keep their Run button.
    promoted = Judge.objects.get(project=demo, name=PLAIN_JUDGE)
    assert (
        f'action="/projects/demo/judges/{promoted.pk}/runs/"'
        in demo_client.get("/projects/demo/judges/").content.decode()
    )


def test_with_an_endpoint_the_llm_judge_has_its_run_button(demo, demo_client, settings):
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = "http://127.0.0.1:11434/v1", ""
    judge = Judge.objects.get(project=demo, name=LLM_JUDGE)
    for path in ("/projects/demo/judges/", f"/projects/demo/judges/{judge.pk}/"):
        html = demo_client.get(path).content.decode()
        assert f'action="/projects/demo/judges/{judge.pk}/runs/"' in html and f"run-blocked-{judge.pk}" not in html


def test_with_an_endpoint_loading_the_demo_queues_the_llm_judges_dev_run_and_bias_battery_once(demo, db, settings):
    from judges.models import BiasRun

    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = "http://127.0.0.1:11434/v1", ""
    out = StringIO()
    with override_settings(DEBUG=True):
        call_command("load_demo", stdout=out)
        call_command("load_demo", stdout=StringIO())  # idempotent: the battery already there stays the only one
    version = Judge.objects.get(project=demo, name=LLM_JUDGE).latest_version()
    assert list(BiasRun.objects.filter(version=version).values_list("status", flat=True)) == ["queued"]
    assert list(JudgeRun.objects.filter(version=version).values_list("split", "status")) == [("dev", "queued")]
    assert f"{version} dev run and bias battery queued for the worker" in out.getvalue()


def test_every_page_in_the_navigation_opens_on_the_demo_project(demo, demo_client):
    """A smoke test over the loaded demo: each page the top bar links to answers 200, as `make run` users see it."""
    home = demo_client.get("/projects/demo/")
    assert home.status_code == 200
    nav = home.content.decode().split('<nav class="project-nav">', 1)[1].split("</nav>", 1)[0]
    links = re.findall(r'href="([^"]+)"', nav)
    assert len(links) >= 10
    for link in links:
        response = demo_client.get(link, follow=True)
        assert response.status_code == 200, link
    # And the pages one level down that the demo has data for.
    promoted = Judge.objects.get(project=demo, name=PLAIN_JUDGE)
    criterion = promoted.criterion
    runs = SuiteRun.objects.filter(project=demo).order_by("id")
    for path in (
        f"/projects/demo/judges/{promoted.pk}/",
        f"/projects/demo/judges/{promoted.pk}/?diff=1..2",
        f"/projects/demo/judges/runs/{_latest_run(promoted.versions.get(number=2), 'dev').pk}/",
        "/projects/demo/judges/promotions/",
        f"/projects/demo/judges/compare/?judge={promoted.pk}&va=1&vb=2&split=dev",
        "/projects/demo/monitoring/settings/",
        f"/projects/demo/monitoring/{criterion.pk}/",
        f"/projects/demo/monitoring/{criterion.pk}/?bucket=day&window=30d",
        f"/projects/demo/suites/{runs[0].pk}/",
        "/projects/demo/golden/?version=1",
        f"/projects/demo/traces/{Trace.objects.filter(project=demo).first().external_id}/",
    ):
        assert demo_client.get(path).status_code == 200, path


def test_the_promises_check_is_a_guardrail_that_never_failed_a_good_answer_and_blocks_an_agent_code(demo, db):
    from demo.services import GUARDRAIL_JUDGE
    from judges.guardrails import guardrails_check
    from judges.models import GuardrailMark

    mark = GuardrailMark.objects.get(project=demo, revoked_at=None)
    assert mark.judge.name == GUARDRAIL_JUDGE and mark.marked_by.username == "demo"
    assert mark.dev_report["fn"] == 0 and mark.test_report["fn"] == 0 and mark.test_report["tp"] > 0
    blocked = guardrails_check(project_id=demo.pk, output="Refund approved, reference RET1234. Guaranteed.")
    assert blocked["allowed"] is False and blocked["violations"][0]["check"] == GUARDRAIL_JUDGE
    assert guardrails_check(project_id=demo.pk, output="Your card is frozen.")["allowed"] is True


def test_the_golden_facts_judge_checks_the_references_and_skips_traces_without_one(demo, db):
    from annotation.models import Label
    from judges.models import Judge, JudgeRun

    judge = Judge.objects.get(project__slug="demo", name="golden-facts")
    assert judge.kind == "reference"
    run = JudgeRun.objects.get(version__judge=judge, split="all", status="done")
    # Four golden answers carry their required facts, and each holds them; every other labelled trace is skipped.
    assert (run.report["n"], run.report["tp"]) == (4, 4)
    labelled = Label.objects.filter(criterion=judge.criterion).count()
    assert run.report["skipped"] == labelled - 4
    assert run.report["skipped_reasons"] == {"no reference": labelled - 4}


def test_the_experts_labels_move_a_sharpened_criterion_its_recalibration_stale_judges_and_re_reviews(demo, demo_client):
    from annotation.models import Criterion, ReviewSession, SelfReview
    from judges import kinds
    from judges.models import JudgeVersion

    criterion = Criterion.objects.get(project__slug="demo", name="resolves_request")
    assert criterion.version == 2 and criterion.versions.count() == 2
    session = ReviewSession.objects.get(project__slug="demo", strategy="recalibration")
    assert 0 < session.size <= 20
    versions = JudgeVersion.objects.filter(judge__criterion=criterion)
    drifts = kinds.versions_drift(v.pk for v in versions)
    assert drifts and all("made under definition v1" in " ".join(d.changes) for d in drifts.values())
    reviews = SelfReview.objects.filter(trace__project__slug="demo")
    assert reviews.count() >= 4 and sum(1 for r in reviews if not r.agrees) == 1
    page = demo_client.get("/projects/demo/reliability/").content.decode()
    assert 'data-self-agreement="plain_text"' in page


def test_the_project_page_is_the_loops_dashboard(demo, demo_client):
    project = demo_client.get("/projects/demo/").content.decode()
    assert 'id="loop"' in project and "Maturity: <strong>level" in project
    # The promoted plain_text judge was made under its criterion's only definition: no promotion is stale.
    assert "data-drift=" not in demo_client.get("/projects/demo/judges/promotions/").content.decode()
