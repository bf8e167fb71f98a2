"""Held-out test gates promotion (issue 11, §1 and §4): a version is promoted only when its dev run reaches the bar
and its test run meets it on evidence (the 95% Wilson lower bounds of TPR and TNR); the promotion keeps the test
report beside the dev one; test runs can be repeated, never tuned on."""

from __future__ import annotations

import html
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from annotation.services import DomainError
from judges.examples import judge_example_add
from judges.models import Judge, JudgeRun, Judgment, Promotion
from judges.promotions import RULE, PromotionRefused, eligibility, judge_version_promote
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_run_maybe_finish, judge_run_plan
from monitoring.series import evidence_matrix
from tests.factories import make_criterion, make_split_labels

pytestmark = pytest.mark.django_db
# Fails a reply that says "sorry".
NO_SORRY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
PASS, FAIL = ("Done.", "pass"), ("Sorry, no.", "fail")
# Expert pass the judge fails, expert fail the judge passes.
FALSE_FAIL, FALSE_PASS = ("Sorry to keep you waiting: done.", "pass"), ("We regret that we cannot.", "fail")


@pytest.fixture
def criterion(project):
    """Dev: 20 passes and 20 fails the judge gets right (100% / 100%)."""
    criterion = make_criterion(project=project, name="no_apology")
    make_split_labels(criterion=criterion, split="dev", outputs=[PASS] * 20 + [FAIL] * 20, prefix="dev")
    return criterion


@pytest.fixture
def judge(project, criterion) -> Judge:
    return judge_create(project=project, criterion=criterion, name="apology", kind="assertion", config=NO_SORRY)


def run(judge: Judge, split: str) -> JudgeRun:
    return judge_run_execute(run=judge_run_create(version=judge.latest_version(), split=split))


def test_a_version_at_100_percent_on_dev_and_50_on_test_is_refused(judge, criterion):
    test_outputs = [PASS] * 10 + [FALSE_FAIL] * 10 + [FAIL] * 10 + [FALSE_PASS] * 10
    make_split_labels(criterion=criterion, split="test", outputs=test_outputs, prefix="test")
    dev, test = run(judge, "dev"), run(judge, "test")
    assert (dev.report["tpr"], dev.report["tnr"]) == (1.0, 1.0)
    assert (test.report["tpr"], test.report["tnr"]) == (0.5, 0.5)
    with pytest.raises(PromotionRefused) as refused:
        judge_version_promote(version=judge.latest_version())
    assert str(refused.value) == (
        "On test, apology v1 has TPR 50% (10/20) and TNR 50% (10/20); the bar is TPR ≥ 90% and TNR ≥ 90%. "
        "Promotion is decided on test, by the 95% lower bounds (on dev, where it was tuned: TPR 100% (20/20) and "
        "TNR 100% (20/20))."
    )
    assert not Promotion.objects.exists()


def test_a_version_without_a_test_run_is_refused_and_told_to_run_it_on_test(judge, criterion):
    make_split_labels(criterion=criterion, split="test", outputs=[PASS] * 40 + [FAIL] * 40, prefix="test")
    run(judge, "dev")
    with pytest.raises(PromotionRefused, match=r"^apology v1 has no finished run on the test split: run it on test"):
        judge_version_promote(version=judge.latest_version())
    assert not Promotion.objects.exists()


def test_a_perfect_test_run_on_too_few_labels_is_refused_with_the_shortfall(judge, criterion):
    make_split_labels(criterion=criterion, split="test", outputs=[PASS] * 3 + [FAIL] * 2, prefix="test")
    run(judge, "dev")
    run(judge, "test")
    check = eligibility(judge.latest_version())
    assert not check.eligible and check.test_check.status == "short"
    # labels_needed(1.0, 0.9) is 36 of each class: 3 passes and 2 fails are far from it.
    assert check.reason.startswith(
        "On test, apology v1 has TPR 100% (3/3) and TNR 100% (2/2), but on too few labels: the 95% lower bounds are "
        "TPR ≥ 29.2% and TNR ≥ 15.8%, under the bar of TPR ≥ 90% and TNR ≥ 90%. At these rates, 33 more pass labels "
        "and 34 more fail labels would show it."
    )
    with pytest.raises(PromotionRefused, match="33 more pass labels and 34 more fail labels"):
        judge_version_promote(version=judge.latest_version())


def test_a_version_meeting_the_bar_on_test_is_promoted_with_the_test_report_as_evidence_and_dev_beside_it(
    judge, criterion, expert
):
    make_split_labels(criterion=criterion, split="test", outputs=[PASS] * 40 + [FAIL] * 36, prefix="test")
    dev, test = run(judge, "dev"), run(judge, "test")
    promotion = judge_version_promote(version=judge.latest_version(), user=expert, comment="held-out check")
    assert (promotion.test_run, promotion.dev_run) == (test, dev)
    assert promotion.report == test.report and promotion.dev_report == dev.report
    assert promotion.evidence_split == "test" and promotion.on_test_evidence
    # What monitoring corrects with: the test run's confusion counts.
    assert evidence_matrix(promotion.report).n == test.report["n"] == 76
    # A test run can be repeated (nothing is tuned on it); promoting again changes nothing.
    run(judge, "test")
    assert judge_version_promote(version=judge.latest_version()) == promotion


def test_a_test_run_one_fail_label_short_of_the_bar_is_refused_and_one_more_makes_it(judge, criterion):
    # A perfect TNR clears 90% with 95% confidence from 36 fails on: 35 are one short (a lower bound of 89.997%).
    make_split_labels(criterion=criterion, split="test", outputs=[PASS] * 40 + [FAIL] * 35, prefix="test")
    run(judge, "dev")
    run(judge, "test")
    with pytest.raises(PromotionRefused, match=r"TNR ≥ 89\.9%.* 1 more fail label would show it"):
        judge_version_promote(version=judge.latest_version())
    make_split_labels(criterion=criterion, split="test", outputs=[FAIL], prefix="late")
    run(judge, "test")
    assert judge_version_promote(version=judge.latest_version()).report["tn"] == 36


@pytest.fixture
def promoted(judge, criterion, expert) -> Promotion:
    make_split_labels(criterion=criterion, split="test", outputs=[PASS] * 40 + [FAIL] * 36, prefix="test")
    run(judge, "dev")
    run(judge, "test")
    return judge_version_promote(version=judge.latest_version(), user=expert)


def test_the_judge_page_the_judges_page_and_the_history_show_test_and_dev_evidence_side_by_side(
    expert_client, promoted, judge
):
    test, dev = promoted.test_run, promoted.dev_run
    pages = {
        "judge": expert_client.get(reverse("judge_detail", args=["acme", judge.pk])).content.decode(),
        "judges": expert_client.get(reverse("judge_list", args=["acme"])).content.decode(),
    }
    for name, page in pages.items():
        evidence = page.split(f'<table class="table promotion-evidence" data-promotion="{promoted.pk}">')[1]
        evidence = evidence.split("</table>")[0]
        test_row, dev_row = evidence.split('data-evidence="test"')[1], evidence.split('data-evidence="dev"')[1]
        assert f"#{test.pk}</a>" in test_row.split("</tr>")[0] and "<td>76</td>" in test_row, name
        assert f"#{dev.pk}</a>" in dev_row.split("</tr>")[0] and "<td>40</td>" in dev_row, name
        assert "Iterate on dev, report test" in page or "iterate on dev, report test" in page.lower(), name
    assert RULE in html.unescape(pages["judges"]) and RULE in html.unescape(pages["judge"])
    history = expert_client.get(reverse("promotion_history", args=["acme"])).content.decode()
    row = history.split(f'data-promotion="{promoted.pk}"')[1].split("</tr>")[0]
    assert f'#{test.pk}</a> <span class="muted">n 76</span>' in row
    assert f'#{dev.pk}</a> <span class="muted">n 40</span>' in row
    assert RULE in html.unescape(history)


def test_the_version_block_shows_each_versions_dev_and_test_runs_and_the_rule_it_fails(expert_client, judge, criterion):
    make_split_labels(criterion=criterion, split="test", outputs=[PASS] * 3 + [FAIL] * 2, prefix="test")
    dev, test = run(judge, "dev"), run(judge, "test")
    page = html.unescape(expert_client.get(reverse("judge_detail", args=["acme", judge.pk])).content.decode())
    block = page.split('class="version-promotion" data-version="1"')[1].split("</div>")[0]
    assert f"dev: #{dev.pk}" in " ".join(block.split()).replace("</a>", "").replace(
        f'<a href="/projects/acme/judges/runs/{dev.pk}/">', ""
    )
    assert f"/judges/runs/{test.pk}/" in block and "TPR 100% (3/3) and TNR 100% (2/2)" in block
    assert "≈ 90% on too few labels: 33 more pass labels and 34 more fail labels" in block
    assert "disabled" in block and "33 more pass labels and 34 more fail labels would show it" in block


def test_promote_judge_prints_the_test_evidence_and_refuses_with_the_rule(judge, criterion, expert):
    make_split_labels(criterion=criterion, split="test", outputs=[PASS] * 3 + [FAIL] * 2, prefix="test")
    run(judge, "dev")
    run(judge, "test")
    with pytest.raises(CommandError, match=r"^refused: On test, apology v1 has TPR 100% \(3/3\).*33 more pass"):
        call_command("promote_judge", project="acme", judge="apology", version=1)
    make_split_labels(criterion=criterion, split="test", outputs=[PASS] * 37 + [FAIL] * 35, prefix="more")
    test = run(judge, "test")
    out = StringIO()
    call_command("promote_judge", project="acme", judge="apology", version=1, stdout=out)
    assert out.getvalue().startswith(
        f"promoted apology v1 for criterion 'no_apology' on test run #{test.pk}: TPR 1.000 (95% lower bound 91.1%), "
        "TNR 1.000 (95% lower bound 90.5%); dev run #"
    )


# --- promotions made before test evidence was required ----------------------------------------------------------


def test_a_promotion_on_dev_evidence_only_is_flagged_and_can_be_promoted_again_on_test(
    expert_client, judge, criterion, expert
):
    dev = run(judge, "dev")
    legacy = Promotion.objects.create(
        criterion=criterion, version=judge.latest_version(), dev_run=dev, report=dev.report, dev_report=dev.report,
        evidence_split="dev", min_tpr=0.9, min_tnr=0.9, promoted_by=expert,
    )  # fmt: skip
    page = html.unescape(expert_client.get(reverse("judge_list", args=["acme"])).content.decode())
    assert (
        "Promoted on dev evidence only, before a test run was required: apology v1 has no finished run on the test"
        in (page)
    )
    assert "none: promoted on its dev run, before a test run was required" in page
    make_split_labels(criterion=criterion, split="test", outputs=[PASS] * 40 + [FAIL] * 40, prefix="test")
    test = run(judge, "test")
    page = html.unescape(expert_client.get(reverse("judge_detail", args=["acme", judge.pk])).content.decode())
    assert "its test run now meets the bar; promote it again to record that evidence." in page
    assert "Promote v1 again on its test evidence" in page
    expert_client.post(reverse("judge_version_promote", args=["acme", judge.pk, 1]))
    renewed = Promotion.objects.get(ended_at=None)
    assert renewed.pk != legacy.pk and (renewed.test_run, renewed.evidence_split) == (test, "test")
    legacy.refresh_from_db()
    assert legacy.ended_at is not None and legacy.report == dev.report  # the record keeps what it was promoted on


# --- test runs are repeated, not tuned on ----------------------------------------------------------------------


@pytest.fixture
def llm_test_run(project, criterion, settings) -> JudgeRun:
    """An LLM judge's finished run on test, every verdict wrong (Judgment rows written here, no LLM call)."""
    make_split_labels(criterion=criterion, split="test", outputs=[PASS] * 3 + [FAIL] * 3, prefix="test")
    make_split_labels(criterion=criterion, split="train", outputs=[PASS, FAIL], prefix="train")
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # an endpoint is configured; nothing calls it
    judge = judge_create(project=project, criterion=criterion, name="apology-llm", kind="llm", config={"few_shot": 0})
    test_run = judge_run_create(version=judge.latest_version(), split="test")
    judge_run_plan(run=test_run)
    tested = criterion.labels.filter(trace__external_id__startswith="test-")
    labels = {label.trace_id: label.verdict for label in tested}
    Judgment.objects.bulk_create(
        Judgment(run=test_run, trace_id=trace_id, verdict="pass" if verdict == "fail" else "fail", reasoning="r")
        for trace_id, verdict in labels.items()
    )
    assert judge_run_maybe_finish(run=test_run)
    test_run.refresh_from_db()
    return test_run


def test_a_new_version_from_a_test_runs_disagreements_is_refused_saying_test_is_held_out(llm_test_run, expert):
    judge = llm_test_run.version.judge
    assert llm_test_run.report["n"] == 6 and llm_test_run.report["accuracy"] == 0.0
    # A train trace, which a train run's disagreement could add: from a test run, nothing can.
    train_trace = judge.criterion.labels.filter(trace__external_id__startswith="train-")[0].trace.external_id
    with pytest.raises(DomainError) as refused:
        judge_example_add(judge=judge, external_id=train_trace, run=llm_test_run, user=expert)
    assert str(refused.value) == (
        f"run #{llm_test_run.pk} is on the test split, which is held out: a version's test run can be repeated but "
        "not tuned on, or the test figures that decide promotion would measure the judge on what it was fitted to. "
        "Iterate on dev; few-shot examples come from train."
    )
    assert judge.versions.count() == 1


def test_the_run_page_of_a_test_run_offers_no_example_and_says_why(expert_client, llm_test_run):
    page = expert_client.get(reverse("judge_run_detail", args=["acme", llm_test_run.pk])).content.decode()
    assert page.count('data-example-state="held_out"') == 6 and "Add as few-shot example" not in page
    assert "held out to report the judge, never to tune it" in page
    assert "This is a test run: test is held out" in page
    response = expert_client.post(
        reverse("judge_example_add", args=["acme", llm_test_run.pk]), {"trace": "test-0"}, follow=True
    )
    assert "is on the test split, which is held out" in html.unescape(response.content.decode())
    assert llm_test_run.version.judge.versions.count() == 1
