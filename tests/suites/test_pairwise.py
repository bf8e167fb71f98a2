"""Pairwise release comparison with an LLM judge asked in both orders: the real openai client against the loopback
server (tests/llm_server.py), real PostgreSQL and, for the page's flow, a real Celery worker.

Two scripted judges: one that always prefers the response shown first (pure position bias: every pair's orders
disagree, no preference counts) and one that prefers the longer response wherever it is shown (counted wins)."""

from __future__ import annotations

import json
import re
import time

import pytest

from annotation.models import Role
from judges.models import LLMResponse
from judges.services import judge_create
from suites.models import PairwiseComparison, PairwiseVerdict, SuiteCase, SuiteRun
from suites.pairwise import (
    PairwiseInputError,
    pairwise_comparison_create,
    pairwise_comparison_execute,
    pairwise_version_for,
)
from tests.factories import add_member, make_criterion, make_project, make_trace, make_user
from tests.llm_server import Reply

CASES = 10
LONGER_IN_CANDIDATE = 7  # the candidate's output is the longer for the first 7 golden cases, the baseline's for 3


def first_shown(_request) -> Reply:
    return Reply(content=json.dumps({"reasoning": "The first response is better.", "preference": "A"}))


def _response(text: str, letter: str) -> str:
    return text.split(f"<response_{letter}>")[1].split(f"</response_{letter}>")[0]


def longer(request) -> Reply:
    """Prefers the longer output, wherever it is shown: what a judge that reads the outputs does here."""
    text = request.messages[-1]["content"]
    a, b = (re.search(r"<output>\n(.*?)\n</output>", _response(text, x), re.S).group(1) for x in "AB")
    preference = "A" if len(a) > len(b) else "B" if len(b) > len(a) else "tie"
    return Reply(
        content=json.dumps({"reasoning": f"<b>{preference}</b> states the full policy.", "preference": preference})
    )


@pytest.fixture
def setup(project, llm_server):
    """Criterion `complete`, an LLM judge for it, and two finished suite runs with ten golden cases in common (plus one
    case only the candidate has, which is not a pair)."""
    criterion = make_criterion(
        project=project, name="complete", definition="Pass when the answer gives the full policy."
    )
    judge = judge_create(
        project=project,
        criterion=criterion,
        name="complete-llm",
        kind="llm",
        config={"few_shot": 0, "model": "test-model"},
    )
    baseline = SuiteRun.objects.create(
        project=project, name="release-41", golden_version=1, status=SuiteRun.Status.DONE
    )
    candidate = SuiteRun.objects.create(
        project=project, name="release-42", golden_version=1, status=SuiteRun.Status.DONE
    )
    for i in range(CASES):
        trace = make_trace(project=project, external_id=f"g-{i}", input=f"Refund window for order {i}?")
        short, full = "30 days.", f"Within 30 days of delivery for order {i}, by mail or in store."
        SuiteCase.objects.create(run=baseline, trace=trace, output=short if i < LONGER_IN_CANDIDATE else full)
        SuiteCase.objects.create(run=candidate, trace=trace, output=full if i < LONGER_IN_CANDIDATE else short)
    SuiteCase.objects.create(run=candidate, trace=make_trace(project=project, external_id="g-new"), output="new")
    return criterion, judge.latest_version(), baseline, candidate


def compare(setup, **options) -> PairwiseComparison:
    criterion, version, baseline, candidate = setup
    comparison = pairwise_comparison_create(
        project=criterion.project,
        baseline=baseline,
        candidate=candidate,
        criterion=criterion,
        version=version,
        **options,
    )
    assert pairwise_comparison_execute(comparison=comparison)
    comparison.refresh_from_db()
    assert comparison.status == "done", comparison.error
    return comparison


@pytest.mark.django_db
def test_a_judge_that_prefers_whatever_is_shown_first_disagrees_with_itself_on_every_pair(setup, llm_server):
    llm_server.respond_with(first_shown)
    s = compare(setup).summary
    # Every pair, both orders; the unpaired case is not asked.
    assert len(llm_server.chat_requests) == 2 * CASES, s
    assert (s["pairs"], s["judged"], s["inconsistent"], s["first_shown_both"]) == (CASES, CASES, CASES, CASES)
    assert (s["candidate_wins"], s["baseline_wins"], s["ties"], s["errors"]) == (0, 0, 0, 0)
    assert s["disagreement_rate"] == 1.0
    low, high = s["disagreement_ci"]
    assert high == 1.0 and 0.69 < low < 0.70  # Clopper–Pearson at 10 of 10: 0.025 ** (1 / 10)
    # Each pair was really shown both ways round: the same two outputs, swapped.
    by_case: dict[str, list[tuple[str, str]]] = {}
    for request in llm_server.chat_requests:
        text = request.messages[-1]["content"]
        case = re.search(r"order (\d+)\?", text).group(1)
        by_case.setdefault(case, []).append((_response(text, "A"), _response(text, "B")))
    assert all(len(shown) == 2 and shown[0] == shown[1][::-1] for shown in by_case.values())


@pytest.mark.django_db
def test_a_judge_that_reads_the_outputs_agrees_in_both_orders_and_its_preferences_count(setup, llm_server):
    llm_server.respond_with(longer)
    comparison = compare(setup)
    s = comparison.summary
    assert (s["candidate_wins"], s["baseline_wins"], s["ties"]) == (LONGER_IN_CANDIDATE, CASES - LONGER_IN_CANDIDATE, 0)
    assert (s["inconsistent"], s["errors"], s["disagreement_rate"]) == (0, 0, 0.0)
    assert s["disagreement_ci"][0] == 0.0 and s["disagreement_ci"][1] == pytest.approx(1 - 0.025 ** (1 / 10))
    assert (s["criterion"], s["judge"], s["version"], s["model"]) == ("complete", "complete-llm", 1, "test-model")
    assert s["prompt_tokens"] == 2 * CASES * 10  # the server's usage: 10 prompt tokens a call
    g0 = PairwiseVerdict.objects.get(comparison=comparison, trace__external_id="g-0")
    assert (g0.outcome, g0.baseline_first, g0.candidate_first) == ("candidate", "B", "A")


@pytest.mark.django_db
def test_the_prompt_carries_the_versions_criterion_and_the_rubric(setup, llm_server):
    llm_server.respond_with(longer)
    compare(setup)
    request = llm_server.chat_requests[0]
    system = request.messages[0]["content"]
    assert "Criterion: complete" in system and "gives the full policy" in system
    assert "Length, confidence, formatting and polish are not quality" in system
    assert request.json["temperature"] == 0 and request.json["model"] == "test-model"


@pytest.mark.django_db
def test_running_the_comparison_again_reads_every_answer_from_the_store(setup, llm_server):
    llm_server.respond_with(longer)
    first = compare(setup)
    asked = len(llm_server.chat_requests)
    assert LLMResponse.objects.count() == 2 * CASES
    again = compare(setup)
    assert len(llm_server.chat_requests) == asked  # not one call more
    assert again.summary["candidate_wins"] == first.summary["candidate_wins"] == LONGER_IN_CANDIDATE
    assert again.summary["prompt_tokens"] == 0 and again.summary["completion_tokens"] == 0


@pytest.mark.django_db
def test_malformed_answers_are_asked_again_then_counted_as_errors_never_guessed(setup, llm_server):
    def broken_for_g3(request):
        if "order 3?" in request.messages[-1]["content"]:
            return Reply(content='{"reasoning": "A, probably", "preference": "A or B"}')
        return longer(request)

    llm_server.respond_with(broken_for_g3)
    comparison = compare(setup)
    s = comparison.summary
    assert (s["errors"], s["judged"], s["candidate_wins"] + s["baseline_wins"]) == (1, CASES - 1, CASES - 1)
    g3 = PairwiseVerdict.objects.get(comparison=comparison, trace__external_id="g-3")
    assert (g3.outcome, g3.baseline_first, g3.candidate_first) == ("error", "", "")
    assert "malformed answer (attempt 2 of 2)" in g3.error and 'preference must be "A", "B" or "tie"' in g3.error
    # Two attempts per order for the broken pair; a malformed answer is never stored.
    assert len(llm_server.chat_requests) == 2 * (CASES - 1) + 4
    assert LLMResponse.objects.count() == 2 * (CASES - 1)


@pytest.mark.django_db
def test_a_comparison_taken_over_judges_only_the_pairs_without_a_verdict(setup, llm_server):
    llm_server.respond_with(longer)
    criterion, version, baseline, candidate = setup
    comparison = pairwise_comparison_create(
        project=criterion.project, baseline=baseline, candidate=candidate, criterion=criterion, version=version
    )
    # An earlier attempt wrote four pairs and died; its run is taken over (queued again here).
    for trace in criterion.project.traces.filter(external_id__in=["g-0", "g-1", "g-2", "g-3"]):
        PairwiseVerdict.objects.create(
            comparison=comparison, trace=trace, outcome="candidate", baseline_first="B", candidate_first="A"
        )
    assert pairwise_comparison_execute(comparison=comparison)
    comparison.refresh_from_db()
    assert len(llm_server.chat_requests) == 2 * (CASES - 4)
    assert comparison.summary["pairs"] == CASES and comparison.pairs_done == CASES
    assert not pairwise_comparison_execute(comparison=comparison)  # finished: a second delivery claims nothing


@pytest.mark.django_db
def test_bad_requests_are_refused_naming_the_field(setup, project, expert):
    criterion, version, baseline, candidate = setup
    other = make_project(slug="other", expert=expert)
    foreign = SuiteRun.objects.create(project=other, golden_version=1)
    lonely = SuiteRun.objects.create(project=project, golden_version=1)
    assertion = judge_create(
        project=project, criterion=criterion, name="no-sorry", kind="assertion",
        config={"check": "contains", "value": "sorry", "must_contain": False},
    ).latest_version()  # fmt: skip
    cases = {
        "baseline_run: suite run": {"baseline": foreign},
        "both name suite run": {"candidate": baseline},
        "no golden case was answered by both": {"candidate": lonely},
        "pairwise comparison needs an LLM judge": {"version": assertion},
    }
    for message, change in cases.items():
        spec = {
            "project": project,
            "baseline": baseline,
            "candidate": candidate,
            "criterion": criterion,
            "version": version,
        }
        with pytest.raises(PairwiseInputError, match=message):
            pairwise_comparison_create(**{**spec, **change})
    assert not PairwiseComparison.objects.exists()


@pytest.mark.django_db
def test_the_version_defaults_to_the_criterions_newest_llm_judge_and_can_be_named(setup, project):
    criterion, version, _, _ = setup
    assert pairwise_version_for(criterion=criterion) == version
    assert pairwise_version_for(criterion=criterion, judge="complete-llm", version=1) == version
    with pytest.raises(PairwiseInputError, match="judge: no judge 'complete-llm' v7"):
        pairwise_version_for(criterion=criterion, judge="complete-llm", version=7)
    with pytest.raises(PairwiseInputError, match="version: name the judge too"):
        pairwise_version_for(criterion=criterion, version=1)
    bare = make_criterion(project=project, name="tone")
    with pytest.raises(PairwiseInputError, match="criterion: 'tone' has no LLM judge"):
        pairwise_version_for(criterion=bare)


# --- the API -------------------------------------------------------------------------------------------------------


@pytest.fixture
def token(project):
    from annotation.services import api_token_create

    return api_token_create(project=project, name="ci")[1]


def post(client, token, body, slug="acme"):
    return client.post(
        f"/api/v1/projects/{slug}/pairwise-comparisons",
        data=json.dumps(body),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    )


@pytest.mark.django_db
def test_the_api_queues_a_comparison_and_reads_it_back_with_the_disagreed_pairs(client, setup, token, llm_server):
    _, _, baseline, candidate = setup
    response = post(
        client, token, {"baseline_run": baseline.pk, "candidate_run": candidate.pk, "criterion": "complete"}
    )
    assert response.status_code == 202, response.content
    queued = response.json()
    assert (queued["status"], queued["pairs_total"]) == ("queued", CASES)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get(queued["status_url"], **auth).json()["result"] is None

    llm_server.respond_with(first_shown)
    assert pairwise_comparison_execute(comparison=PairwiseComparison.objects.get(pk=queued["id"]))
    body = client.get(queued["status_url"], **auth).json()
    assert (body["status"], body["criterion"], body["judge"], body["version"]) == (
        "done",
        "complete",
        "complete-llm",
        1,
    )
    assert body["result"]["disagreement_rate"] == 1.0 and body["result"]["inconsistent"] == CASES
    assert [d["id"] for d in body["disagreed"]] == [f"g-{i}" for i in range(CASES)]
    assert body["disagreed"][0] == {
        "id": "g-0",
        "outcome": "inconsistent",
        "baseline_first": "A",
        "candidate_first": "A",
        "error": "",
    }


@pytest.mark.django_db
def test_the_api_says_what_is_wrong_and_guards_access(client, setup, token, project, outsider):
    _, _, baseline, candidate = setup
    good = {"baseline_run": baseline.pk, "candidate_run": candidate.pk, "criterion": "complete"}
    for body, message in [
        ({**good, "criterion": "nope"}, "criterion: no criterion 'nope' in 'acme'"),
        ({**good, "baseline_run": 999999}, "baseline_run: suite run 999999 is not a suite run of 'acme'"),
        ({**good, "candidate_run": baseline.pk}, "both name suite run"),
        ({**good, "judge": "ghost"}, "judge: no judge 'ghost'"),
        ({**good, "baseline_run": "12"}, "baseline_run: expected a suite run id"),
        ({**good, "extra": 1}, "unknown key 'extra'"),
    ]:
        response = post(client, token, body)
        assert response.status_code == 400 and message in response.json()["detail"], (body, response.json())
    assert post(client, "wrong", good).status_code == 401
    other = make_project(slug="other", expert=outsider)
    from annotation.services import api_token_create

    foreign = api_token_create(project=other, name="theirs")[1]
    assert post(client, foreign, good).status_code == 404
    comparison = pairwise_comparison_create(
        project=project, baseline=baseline, candidate=candidate, criterion=setup[0], version=setup[1]
    )
    response = client.get(f"/api/v1/pairwise-comparisons/{comparison.pk}", HTTP_AUTHORIZATION=f"Bearer {foreign}")
    assert response.status_code == 404
    assert not PairwiseComparison.objects.exclude(pk=comparison.pk).exists()


# --- the page --------------------------------------------------------------------------------------------------------


def wait_until_finished(comparison_id: int, timeout: float = 60) -> PairwiseComparison:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        comparison = PairwiseComparison.objects.get(pk=comparison_id)
        if comparison.is_finished:
            return comparison
        time.sleep(0.1)
    raise AssertionError(f"pairwise comparison {comparison_id} still {comparison.status} after {timeout} s")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_the_comparison_page_starts_one_on_the_worker_and_shows_the_disagreed_pairs(
    celery_worker, setup, expert_client, llm_server
):
    criterion, version, baseline, candidate = setup
    page = f"/projects/acme/suites/compare/?a={baseline.pk}&b={candidate.pk}"
    body = expert_client.get(page).content.decode()
    assert "Compare pairwise with complete-llm v1" in body and "No pairwise comparison of these runs yet." in body

    llm_server.respond_with(first_shown)
    response = expert_client.post(
        "/projects/acme/suites/compare/pairwise/", {"a": baseline.pk, "b": candidate.pk, "version": version.pk}
    )
    assert response.status_code == 302 and response["Location"].endswith(f"?a={baseline.pk}&b={candidate.pk}#pairwise")
    comparison = wait_until_finished(PairwiseComparison.objects.get().pk)
    assert comparison.status == "done", comparison.error

    body = expert_client.get(page).content.decode()
    tally = body.split('class="table pairwise-tally"')[1].split("</table>")[0]
    assert '<td class="inconsistent">10</td>' in tally and '<td class="candidate-wins">0</td>' in tally
    assert "1.000" in tally and "[0.69, 1.00]" in tally
    disagreed = body.split('class="table pairwise-disagreed"')[1].split("</table>")[0]
    assert disagreed.count('class="pair-inconsistent"') == CASES
    assert '<a href="/projects/acme/traces/g-0/">g-0</a>' in disagreed
    assert "10 chose the output shown first both times" in body
    assert f'hx-get="/projects/acme/suites/pairwise/{comparison.pk}/"' not in body  # finished: nothing to poll


@pytest.mark.django_db
def test_reasoning_is_escaped_and_a_running_comparison_polls(setup, expert_client, llm_server):
    llm_server.respond_with(
        lambda request: Reply(content=json.dumps({"reasoning": "<script>x()</script> first", "preference": "A"}))
    )
    comparison = compare(setup)
    detail = expert_client.get(f"/projects/acme/suites/pairwise/{comparison.pk}/").content.decode()
    assert "<script>x()" not in detail and "&lt;script&gt;x()&lt;/script&gt; first" in detail
    assert "<h1>Pairwise comparison #" in detail  # a page of its own when not asked by htmx
    PairwiseComparison.objects.filter(pk=comparison.pk).update(status="running", pairs_done=4)
    polled = expert_client.get(f"/projects/acme/suites/pairwise/{comparison.pk}/", HTTP_HX_REQUEST="true")
    running = polled.content.decode()
    assert polled.status_code == 200 and "<h1>" not in running  # the card alone, swapped in place
    assert "4 of 10" in running and 'hx-trigger="every 1s"' in running
    PairwiseComparison.objects.filter(pk=comparison.pk).update(status="done")
    finished = expert_client.get(f"/projects/acme/suites/pairwise/{comparison.pk}/", HTTP_HX_REQUEST="true")
    assert finished.status_code == 286 and 'hx-trigger="every 1s"' not in finished.content.decode()


@pytest.mark.django_db
def test_outsiders_get_404_and_viewers_cannot_start_one(setup, outsider_client, client, project):
    criterion, version, baseline, candidate = setup
    comparison = pairwise_comparison_create(
        project=project, baseline=baseline, candidate=candidate, criterion=criterion, version=version
    )
    assert outsider_client.get(f"/projects/acme/suites/pairwise/{comparison.pk}/").status_code == 404
    start = {"a": baseline.pk, "b": candidate.pk, "version": version.pk}
    assert outsider_client.post("/projects/acme/suites/compare/pairwise/", start).status_code == 404
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client.force_login(viewer)
    assert client.post("/projects/acme/suites/compare/pairwise/", start).status_code == 403
    page = client.get(f"/projects/acme/suites/compare/?a={baseline.pk}&b={candidate.pk}").content.decode()
    assert "Compare pairwise with" not in page and f'data-comparison="{comparison.pk}"' in page
    assert PairwiseComparison.objects.count() == 1


@pytest.mark.django_db
def test_the_page_offers_each_llm_judges_newest_version(setup, project, expert_client):
    from judges.services import judge_version_create

    criterion, version, baseline, candidate = setup
    newer = judge_version_create(judge=version.judge, config={"few_shot": 0, "model": "test-model", "max_tokens": 400})
    page = expert_client.get(f"/projects/acme/suites/compare/?a={baseline.pk}&b={candidate.pk}").content.decode()
    assert f"Compare pairwise with complete-llm v{newer.number}" in page
    assert "Compare pairwise with complete-llm v1<" not in page  # an older, unpromoted version is not offered
