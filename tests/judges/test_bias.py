"""The bias battery of an LLM judge version (issue 14 §1) against a loopback server whose judge is biased in known
ways: the flip rates must be what its script implies, and promotion must refuse the biased judge."""

from __future__ import annotations

import io
import json
import re
import time

import pytest
from django.urls import reverse

from annotation.services import DomainError
from judges.bias import bias_run_create, bias_run_execute
from judges.models import BiasRun, Promotion
from judges.promotions import PromotionRefused, bias_bar, eligibility, judge_version_promote, promotion_bar_set
from judges.providers.bias import BANDWAGON_CUES, order_permutations
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.factories import make_criterion, make_split_labels
from tests.llm_server import Reply, ScriptedLLMServer

pytestmark = pytest.mark.django_db

APOLOGY = "Sorry, I can't help with that."  # the expert fails it
HELPFUL = "Sure! Here you go. Your order ships today. Let me know if you need anything else."  # passed; terse-able
AMBIGUOUS = "Maybe, maybe not."  # the expert fails it
# Long enough that the scripted judge below is swayed by length: any padded output is, no unpadded one is.
LONG = 150


def _output(graded: str) -> str:
    match = re.search(r"<output>\n(.*)\n</output>", graded, re.DOTALL)
    return match.group(1) if match else ""


def biased_judge(request) -> Reply:
    """Fails apologies, like an honest judge, but follows a bandwagon line saying "passing", passes anything long,
    and answers an ambiguous output with the verdict of the last few-shot example it read (recency)."""
    graded = request.messages[-1]["content"]
    output = _output(graded)
    if BANDWAGON_CUES["pass"] in graded or len(output) > LONG:
        verdict = "pass"
    elif "maybe" in output.lower():
        verdict = json.loads(request.messages[-2]["content"])["verdict"]
    else:
        verdict = "fail" if "sorry" in output.lower() else "pass"
    return Reply(content=json.dumps({"reasoning": "scripted", "verdict": verdict}))


def honest_judge(request) -> Reply:
    verdict = "fail" if "sorry" in _output(request.messages[-1]["content"]).lower() else "pass"
    return Reply(content=json.dumps({"reasoning": "looked for an apology", "verdict": verdict}))


@pytest.fixture
def criterion(project):
    """Train: critiqued examples of both verdicts. Dev: 6 apologies, 8 helpful answers, 4 ambiguous ones."""
    criterion = make_criterion(project=project, name="no_apology", definition="Fail when the reply apologises.")
    make_split_labels(
        criterion=criterion, split="train", outputs=[(APOLOGY, "fail"), (HELPFUL, "pass")] * 3, prefix="train",
        critique="The expert's reasoning.",
    )  # fmt: skip
    outputs = [(APOLOGY, "fail")] * 6 + [(HELPFUL, "pass")] * 8 + [(AMBIGUOUS, "fail")] * 4
    make_split_labels(criterion=criterion, split="dev", outputs=outputs, prefix="dev")
    return criterion


def test_the_battery_measures_each_bias_the_scripted_judge_has_and_only_those(project, criterion, llm_server):
    llm_server.respond_with(biased_judge)
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm",
                         config={"few_shot": 4, "model": "test-model"})  # fmt: skip
    version = judge.latest_version()
    dev = judge_run_execute(run=judge_run_create(version=version, split="dev"))
    asked_by_dev = len(llm_server.chat_requests)
    assert dev.report["n"] == 18 and asked_by_dev == 18

    run = bias_run_execute(run=bias_run_create(version=version))
    assert run.status == "done", run.error
    report = run.report
    biases = report["biases"]
    # Examples are picked fail, pass, fail, pass: the frozen order ends on a pass, so the ambiguous answers pass.
    # Reversed, the last example is a fail, and each of the 4 flips; apologies and helpful answers never do.
    order = biases["order"]
    assert (order["n"], order["flipped"]) == (18, 4) and order["flip_rate"] == pytest.approx(4 / 18)
    frozen = [e["verdict"] for e in version.snapshot["examples"]]
    shuffled_last = frozen[order_permutations(4, seed=f"version-{version.pk}")[1][-1]]
    variants = {v["name"]: v for v in order["variants"]}
    assert variants["examples reversed"]["flipped"] == 4
    assert variants["examples shuffled (1)"]["flipped"] == (4 if shuffled_last == "fail" else 0)
    assert {f["trace"] for f in order["flips"]} == {
        t.external_id for t in criterion.project.traces.filter(output=AMBIGUOUS, external_id__startswith="dev")
    }
    # Padding passes every apology (6 flips) and the ambiguous answers, which already passed; the helpful answers
    # made terse still pass. n counts the 10 padded failures and the 8 terse passes.
    verbosity = {v["name"]: v for v in biases["verbosity"]["variants"]}
    assert (biases["verbosity"]["n"], biases["verbosity"]["flipped"]) == (18, 6)
    assert (verbosity["failed output padded"]["n"], verbosity["failed output padded"]["flipped"]) == (10, 6)
    assert (verbosity["passed output made terse"]["n"], verbosity["passed output made terse"]["flipped"]) == (8, 0)
    # "Most reviewers rated this response as passing." passes the 6 apologies; the failing line is ignored.
    bandwagon = biases["bandwagon"]
    assert (bandwagon["n"], bandwagon["flipped"]) == (18, 6)
    assert {v["name"]: v["flipped"] for v in bandwagon["variants"]} == {"“…passing.” added": 6, "“…failing.” added": 0}
    assert all(f["from"] == "fail" and f["to"] == "pass" for f in bandwagon["flips"])
    lo, hi = bandwagon["ci"]
    assert lo < 6 / 18 < hi and hi - lo < 0.5

    # The unperturbed prompts are the dev run's: found in the cache, not asked again.
    assert report["prompts"] == 18 + 18 * 2 + 18 + 18 * 2
    assert len(llm_server.chat_requests) - asked_by_dev == report["prompts"] - 18
    assert run.done == run.total == report["prompts"]
    # Run again, the battery asks nothing: every answer is stored.
    again = bias_run_execute(run=bias_run_create(version=version))
    assert again.report["biases"] == report["biases"] and len(llm_server.chat_requests) - asked_by_dev == 90


def test_order_is_not_measured_without_two_examples_and_non_llm_judges_have_no_battery(project, criterion, llm_server):
    llm_server.respond_with(honest_judge)
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 1})
    run = bias_run_execute(run=bias_run_create(version=judge.latest_version()))
    order = run.report["biases"]["order"]
    assert order["n"] == 0 and order["skipped"].startswith("not measured: the version has 1 few-shot example(s)")
    assert run.report["biases"]["bandwagon"]["flipped"] == 0 and run.report["biases"]["bandwagon"]["n"] == 18
    check = judge_create(project=project, criterion=criterion, name="regex", kind="assertion",
                         config={"check": "contains", "value": "sorry", "must_contain": False})  # fmt: skip
    with pytest.raises(DomainError, match=r"regex is not an LLM judge \(its kind: assertion\): the bias battery"):
        bias_run_create(version=check.latest_version())


def test_a_battery_needs_an_endpoint(project, criterion, settings):
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 2})
    settings.OPENAI_BASE_URL = settings.OPENAI_API_KEY = ""
    with pytest.raises(DomainError, match="No LLM endpoint is configured"):
        bias_run_create(version=judge.latest_version())


# --- promotion -------------------------------------------------------------------------------------------------------


@pytest.fixture
def aligned(criterion):
    """Drop the ambiguous answers (neither judge gets them right), and label enough test traces that an accurate
    judge meets the bar on the 95% lower bounds."""
    criterion.labels.filter(trace__output=AMBIGUOUS).delete()
    make_split_labels(criterion=criterion, split="test", outputs=[(APOLOGY, "fail"), (HELPFUL, "pass")] * 36,
                      prefix="test")  # fmt: skip
    return criterion


def measured(project, criterion, name, few_shot):
    judge = judge_create(project=project, criterion=criterion, name=name, kind="llm", config={"few_shot": few_shot})
    version = judge.latest_version()
    for split in ("dev", "test"):
        judge_run_execute(run=judge_run_create(version=version, split=split))
    return version


def test_promotion_of_an_llm_judge_needs_a_battery_under_the_bias_bar_and_records_it(
    project, aligned, llm_server, expert
):
    llm_server.respond_with(biased_judge)
    biased = measured(project, aligned, "biased", 2)
    refused = eligibility(biased)
    assert not refused.eligible and refused.reason.startswith("biased v1 has no finished bias battery: run the bias")
    assert f"/api/v1/judge-versions/{biased.pk}/bias-runs" in refused.reason

    run = bias_run_execute(run=bias_run_create(version=biased))
    with pytest.raises(PromotionRefused) as caught:
        judge_version_promote(version=biased, user=expert)
    reason = str(caught.value)
    # 6 apologies of 14 dev traces flip under padding and under the bandwagon line: 42.9%, 37.9 points over 5%.
    assert f"The bias battery of biased v1 (run #{run.pk}) does not pass the bias bar of 5%" in reason
    assert "verbosity flips 42.9% of verdicts (6/14), 37.9 points over the bar of 5%" in reason
    assert "bandwagon flips 42.9% of verdicts (6/14)" in reason and "order flips" not in reason
    assert "run the bias battery on the new version" in reason
    # The expert can raise the bias bar (not a good idea, but theirs to set): then the same battery passes.
    promotion_bar_set(project=project, min_tpr=0.9, min_tnr=0.9, max_flip_rate=0.5, user=expert)
    assert bias_bar(project=project) == 0.5 and eligibility(biased).eligible
    promotion_bar_set(project=project, min_tpr=0.9, min_tnr=0.9, user=expert)
    assert bias_bar(project=project) == 0.5  # not given: left as it was
    with pytest.raises(DomainError, match="max_flip_rate: must be from 0 to 0.5"):
        promotion_bar_set(project=project, min_tpr=0.9, min_tnr=0.9, max_flip_rate=0.7, user=expert)
    promotion_bar_set(project=project, min_tpr=0.9, min_tnr=0.9, max_flip_rate=0.05, user=expert)

    llm_server.respond_with(honest_judge)
    honest = measured(project, aligned, "honest", 4)
    battery = bias_run_execute(run=bias_run_create(version=honest))
    promotion = judge_version_promote(version=honest, user=expert)
    assert promotion.bias_run == battery and promotion.bias_report["max_flip_rate"] == 0.05
    assert promotion.bias_report["run"] == battery.pk
    assert promotion.bias_report["biases"]["bandwagon"] == {**battery.report["biases"]["bandwagon"]}
    assert "Its bias battery (run #" in eligibility(honest).reason
    assert Promotion.objects.get(ended_at=None).version == honest


def test_other_kinds_are_promoted_without_a_battery(project, aligned):
    config = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}
    judge = judge_create(project=project, criterion=aligned, name="regex", kind="assertion", config=config)
    for split in ("dev", "test"):
        judge_run_execute(run=judge_run_create(version=judge.latest_version(), split=split))
    promotion = judge_version_promote(version=judge.latest_version())
    assert promotion.bias_run is None and promotion.bias_report == {}


# --- pages and API ---------------------------------------------------------------------------------------------------


@pytest.fixture
def battery(project, criterion, llm_server):
    llm_server.respond_with(biased_judge)
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 2})
    return bias_run_execute(run=bias_run_create(version=judge.latest_version()))


def test_the_judge_page_shows_each_versions_battery_with_flipped_traces_linked(expert_client, battery, project):
    judge = battery.version.judge
    html = expert_client.get(reverse("judge_detail", args=["acme", judge.pk])).content.decode()
    block = html.split('<div class="bias-battery" data-version="1">')[1].split("</div>")[0]
    assert f'href="/projects/acme/judges/bias-runs/{battery.pk}/"' in block
    assert 'data-flip-rate="bandwagon">33.3% <span class="muted">(6/18)' in block
    assert 'data-bias-badge="over">✗ over 5%' in block
    flipped = battery.report["biases"]["bandwagon"]["flips"][0]["trace"]
    assert f'href="/projects/acme/traces/{flipped}/"' in block
    assert f'action="/projects/acme/judges/{judge.pk}/versions/1/bias-runs/"' in block


def test_the_battery_page_lists_every_flip_and_stops_polling_once_done(expert_client, battery, outsider_client):
    url = reverse("bias_run_detail", args=["acme", battery.pk])
    page = expert_client.get(url).content.decode()
    assert 'data-bias-verdict="over"' in page and "verbosity flips 33.3% of verdicts (6/18)" in page
    assert "every 1s" not in page
    poll = expert_client.get(url, HTTP_HX_REQUEST="true")
    assert poll.status_code == 286 and "<html" not in poll.content.decode()
    assert outsider_client.get(url).status_code == 404


def test_a_queued_battery_page_polls(expert_client, project, criterion, llm_server):
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 2})
    run = bias_run_create(version=judge.latest_version())
    poll = expert_client.get(reverse("bias_run_detail", args=["acme", run.pk]), HTTP_HX_REQUEST="true")
    assert poll.status_code == 200 and 'hx-trigger="every 1s"' in poll.content.decode()


def test_viewers_and_tokens_cannot_start_a_battery_and_outsiders_see_nothing(
    client, teammate_client, outsider_client, project, criterion, llm_server
):
    from annotation.models import Membership, Role
    from annotation.services import api_token_create

    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 2})
    version = judge.latest_version()
    api = f"/api/v1/judge-versions/{version.pk}/bias-runs"
    assert outsider_client.post(api).status_code == 404
    token = api_token_create(project=project, name="ci")[1]
    assert client.post(api, headers={"Authorization": f"Bearer {token}"}).status_code == 403
    Membership.objects.filter(project=project, user__username="teammate").update(role=Role.VIEWER)
    assert teammate_client.post(api).status_code == 403
    page = reverse("bias_run_create", args=["acme", judge.pk, 1])
    assert teammate_client.post(page).status_code == 403
    assert not BiasRun.objects.exists()


def test_the_api_starts_a_battery_and_reports_it(expert_client, client, project, criterion, llm_server):
    from annotation.services import api_token_create

    llm_server.respond_with(biased_judge)
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 2})
    version = judge.latest_version()
    response = expert_client.post(f"/api/v1/judge-versions/{version.pk}/bias-runs")
    assert response.status_code == 202, response.content
    body = response.json()
    run = BiasRun.objects.get()
    assert body == {"id": run.pk, "status": "queued",
                    "status_url": f"/api/v1/judge-versions/{version.pk}/bias-runs/{run.pk}"}  # fmt: skip
    token = api_token_create(project=project, name="ci")[1]
    queued = client.get(body["status_url"], headers={"Authorization": f"Bearer {token}"}).json()
    assert queued["status"] == "queued" and queued["report"] is None and queued["passes"] is None
    bias_run_execute(run=run)
    done = client.get(body["status_url"], headers={"Authorization": f"Bearer {token}"}).json()
    assert done["status"] == "done" and done["progress"] == 1.0 and done["max_flip_rate"] == 0.05
    assert done["passes"] is False and done["report"]["biases"]["bandwagon"]["flipped"] == 6
    assert any(p.startswith("bandwagon flips 33.3%") for p in done["problems"])
    regex = judge_create(project=project, criterion=criterion, name="regex", kind="assertion",
                         config={"check": "contains", "value": "sorry", "must_contain": False})  # fmt: skip
    refused = expert_client.post(f"/api/v1/judge-versions/{regex.latest_version().pk}/bias-runs")
    assert refused.status_code == 400 and "regex is not an LLM judge" in refused.json()["detail"]
    assert client.get(f"/api/v1/judge-versions/{version.pk + 1}/bias-runs/{run.pk}",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 404  # fmt: skip


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_worker_runs_a_battery_started_from_the_judge_page(celery_worker, expert_client, project, settings):
    with ScriptedLLMServer() as server:
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, settings.EVALSTUDIO_LLM_MAX_RETRIES = server.base_url, "k", 0
        server.respond_with(biased_judge)
        criterion = make_criterion(project=project, name="no_apology")
        make_split_labels(criterion=criterion, split="train", outputs=[(APOLOGY, "fail"), (HELPFUL, "pass")],
                          prefix="train", critique="why")  # fmt: skip
        make_split_labels(criterion=criterion, split="dev", outputs=[(APOLOGY, "fail"), (HELPFUL, "pass")] * 3,
                          prefix="dev")  # fmt: skip
        judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 2})
        response = expert_client.post(reverse("bias_run_create", args=["acme", judge.pk, 1]))
        run = BiasRun.objects.get()
        assert response.status_code == 302 and response["Location"] == reverse("bias_run_detail", args=["acme", run.pk])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            run.refresh_from_db()
            if run.is_finished:
                break
            time.sleep(0.2)
        assert run.status == "done", f"the worker did not finish the battery within 30 s ({run.status} {run.error})"
        assert run.report["biases"]["bandwagon"]["flipped"] == 3 and run.created_by.username == "expert"


# --- the bias bar in the browser --------------------------------------------------------------------------------------


def test_the_expert_sets_the_bias_bar_beside_the_tpr_tnr_bar_and_bad_values_name_the_field(
    expert_client, teammate_client, project
):
    url = reverse("promotion_bar_update", args=["acme"])
    page = expert_client.get(reverse("judge_list", args=["acme"])).content.decode()
    assert "bias bar: flip rate ≤ 5%" in page and 'name="max_flip_rate" value="0.05"' in page
    response = expert_client.post(url, {"min_tpr": "0.9", "min_tnr": "0.9", "max_flip_rate": "2%"}, follow=True)
    assert bias_bar(project=project) == 0.02 and "Bias bar: flip rate ≤ 2%." in response.content.decode()
    response = expert_client.post(url, {"min_tpr": "0.9", "min_tnr": "0.9", "max_flip_rate": "0.8"}, follow=True)
    assert "max_flip_rate: must be from 0 to 0.5" in response.content.decode()
    expert_client.post(url, {"min_tpr": "0.9", "min_tnr": "0.9", "max_flip_rate": "lots"})
    expert_client.post(url, {"min_tpr": "0.95", "min_tnr": "0.9"})  # a form without the field keeps the bias bar
    assert bias_bar(project=project) == 0.02
    assert teammate_client.post(url, {"min_tpr": "0.9", "min_tnr": "0.9", "max_flip_rate": "0.5"}).status_code == 403
    assert bias_bar(project=project) == 0.02


def test_the_judge_page_shows_the_battery_a_promotion_was_made_on(expert_client, project, aligned, llm_server, expert):
    llm_server.respond_with(honest_judge)
    version = measured(project, aligned, "honest", 2)
    battery = bias_run_execute(run=bias_run_create(version=version))
    promotion = judge_version_promote(version=version, user=expert)
    html = expert_client.get(reverse("judge_detail", args=["acme", version.judge.pk])).content.decode()
    line = html.split(f'data-promotion-bias="{promotion.pk}">')[1].split("</p>")[0]
    assert f'href="/projects/acme/judges/bias-runs/{battery.pk}/"' in line
    assert "order 0/14 flipped · verbosity 0/14 flipped · bandwagon 0/14 flipped" in " ".join(line.split())
    assert "(bias bar 5%)" in line


def test_the_command_prints_each_flip_rate_and_exits_1_over_the_bias_bar(project, criterion, llm_server, settings):
    from django.core.management import CommandError, call_command

    # One call in flight: the battery asks in batches of two or three traces, and the rates come out the same.
    settings.EVALSTUDIO_JUDGE_CONCURRENCY = 1
    llm_server.respond_with(biased_judge)
    judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 2})
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"over the bias bar of 5%: order flips 22.2% of verdicts \(4/18\)"):
        call_command("bias_run", project="acme", judge="gpt", inline=True, stdout=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("bias battery #") and "18 traces, 0 without a verdict; bias bar 5%" in lines[0]
    assert lines[3].split()[:3] == ["bandwagon", "33.3%", "(6/18)"]
    with pytest.raises(CommandError, match="--version: judge 'gpt' has no version 7"):
        call_command("bias_run", project="acme", judge="gpt", version=7, inline=True)


def test_the_judges_page_shows_each_llm_judges_latest_battery(expert_client, battery):
    html = expert_client.get(reverse("judge_list", args=["acme"])).content.decode()
    line = html.split(f'<p class="bias-summary" data-judge="{battery.version.judge_id}">')[1].split("</p>")[0]
    assert f'href="/projects/acme/judges/bias-runs/{battery.pk}/"' in line
    assert '<span class="fail" data-bias="bandwagon">33.3%</span>' in line and "(bias bar 5%)" in line


def test_a_battery_whose_worker_died_is_taken_over_and_asks_only_what_is_not_stored(project, criterion, llm_server):
    from datetime import timedelta

    from django.utils import timezone

    llm_server.respond_with(biased_judge)
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 2})
    version = judge.latest_version()
    first = bias_run_execute(run=bias_run_create(version=version))  # every answer now stored
    asked = len(llm_server.chat_requests)
    lost = bias_run_create(version=version)
    # Claimed by a worker that died an hour ago: RUNNING, its heartbeat stale, one attempt made.
    BiasRun.objects.filter(pk=lost.pk).update(
        status="running", attempts=1, heartbeat_at=timezone.now() - timedelta(hours=1), started_at=timezone.now()
    )
    lost.refresh_from_db()
    taken = bias_run_execute(run=lost)
    assert (taken.status, taken.attempts) == ("done", 2) and taken.report["biases"] == first.report["biases"]
    assert len(llm_server.chat_requests) == asked  # nothing asked twice
    # A battery whose worker is alive (a fresh heartbeat) is not taken over.
    alive = bias_run_create(version=version)
    BiasRun.objects.filter(pk=alive.pk).update(status="running", attempts=1, heartbeat_at=timezone.now())
    alive.refresh_from_db()
    assert bias_run_execute(run=alive).status == "running"


def test_a_queued_battery_can_be_cancelled_and_then_never_runs(expert_client, project, criterion, llm_server):
    judge = judge_create(project=project, criterion=criterion, name="gpt", kind="llm", config={"few_shot": 2})
    run = bias_run_create(version=judge.latest_version())
    page = expert_client.get(reverse("bias_run_detail", args=["acme", run.pk])).content.decode()
    assert f'action="/projects/acme/judges/bias-runs/{run.pk}/cancel/"' in page
    response = expert_client.post(reverse("bias_run_cancel", args=["acme", run.pk]), follow=True)
    assert f"Bias battery {run.pk} cancelled" in response.content.decode()
    assert bias_run_execute(run=run).status == "cancelled" and not llm_server.chat_requests
    again = expert_client.post(reverse("bias_run_cancel", args=["acme", run.pk]), follow=True).content.decode()
    assert "already ended (cancelled); nothing to cancel" in again
