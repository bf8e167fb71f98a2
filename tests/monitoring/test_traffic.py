"""Which production traffic a series is judged on: the sample, or all of it for a check that runs here without paying
anyone (assertion and classifier judges, outcome graders); an LLM judge always judges the sample."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connections

from annotation import ingest
from annotation.models import Role, Trace
from judges.bias import bias_run_create, bias_run_execute
from judges.promotions import judge_version_promote
from judges.services import judge_create, judge_run_create, judge_run_execute
from monitoring.models import SeriesTraffic
from monitoring.services import monitoring_drain, sampling_rate_set, series_for_criterion, series_traffic_set
from tests.factories import add_member, make_label, make_split_labels, make_user
from tests.llm_server import Reply, ScriptedLLMServer
from tests.monitoring.helpers import jsonl, production, promoted_judge, sampled, verdicts_of


def verdict_by_content(request) -> Reply:
    graded = request.messages[-1]["content"]
    verdict = "fail" if "sorry" in graded.lower() else "pass"
    return Reply(content=json.dumps({"reasoning": f"Looked for an apology: {verdict}.", "verdict": verdict}))


def llm_judge_of_tone(project, llm, settings):
    """A second criterion, labelled like the first, with a promoted LLM judge (the loopback server answers)."""
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, settings.EVALSTUDIO_LLM_MAX_RETRIES = llm.base_url, "k", 0
    llm.respond_with(verdict_by_content)
    tone = project.criteria.create(name="tone", position=2)
    for trace in Trace.objects.filter(project=project, external_id__startswith="lab-"):
        make_label(trace=trace, criterion=tone, verdict="fail" if trace.output.startswith("Sorry") else "pass")
    # Promotion is decided on test by the 95% lower bounds: enough labels of each class there.
    make_split_labels(
        criterion=tone, split="test", outputs=[("Done.", "pass"), ("Sorry, no.", "fail")] * 40, prefix="tone-test"
    )
    judge = judge_create(project=project, criterion=tone, name="gpt", kind="llm", config={"few_shot": 0})
    version = judge.latest_version()
    for split in ("dev", "test"):
        judge_run_execute(run=judge_run_create(version=version, split=split))
    bias_run_execute(run=bias_run_create(version=version))  # an LLM judge is promoted after its bias battery
    return judge_version_promote(version=version)


@pytest.mark.django_db(transaction=True)
def test_an_all_traffic_assertion_judges_every_production_trace_and_an_llm_only_the_sample_concurrently_once_each(
    project, settings
):
    cheap = promoted_judge(project)
    with ScriptedLLMServer() as llm:
        paid = llm_judge_of_tone(project, llm, settings)
        # Both series are set to all traffic: only the assertion's is in force; the LLM judge keeps to the sample.
        for promotion in (cheap, paid):
            series_traffic_set(series=series_for_criterion(criterion=promotion.criterion), all_traffic=True)
        ingest.import_stream(project=project, stream=jsonl(production(400)))
        staging = [{**item, "id": f"s-{i}", "source": "staging"} for i, item in enumerate(production(50))]
        ingest.import_stream(project=project, stream=jsonl(staging))
        before = len(llm.chat_requests)
        want_all = set(Trace.objects.filter(project=project, source="production").values_list("id", flat=True))
        want_sample = sampled(project)
        assert len(want_all) == 400 and 30 < len(want_sample) < 100

        def drain() -> None:
            try:
                monitoring_drain(project=project, budget_seconds=60)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=drain) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        assert monitoring_drain(project=project) == 0  # the concurrent drains left nothing behind

        everything = verdicts_of(cheap.version)
        assert sorted(everything.values_list("trace_id", flat=True)) == sorted(want_all)
        outputs = dict(Trace.objects.filter(pk__in=want_all).values_list("id", "output"))
        assert all(
            (v == "fail") == outputs[t].startswith("Sorry") for t, v in everything.values_list("trace_id", "verdict")
        )
        sample = verdicts_of(paid.version)
        assert sorted(sample.values_list("trace_id", flat=True)) == sorted(want_sample)
        assert len(llm.chat_requests) - before == len(want_sample)  # one LLM call per sampled trace, no more


@pytest.mark.django_db
def test_traces_stored_before_the_switch_keep_their_sample_decision(project):
    promotion = promoted_judge(project)
    ingest.import_stream(project=project, stream=jsonl(production(300, prefix="before")))
    sampled_before = sampled(project)
    series = series_for_criterion(criterion=promotion.criterion)
    series_traffic_set(series=series, all_traffic=True)
    ingest.import_stream(project=project, stream=jsonl(production(100, prefix="after")))
    series_traffic_set(series=series, all_traffic=False)
    ingest.import_stream(project=project, stream=jsonl(production(300, prefix="later")))
    monitoring_drain(project=project)

    production_ids = Trace.objects.filter(project=project, source="production")
    after = set(production_ids.filter(external_id__startswith="after-").values_list("id", flat=True))
    later = set(production_ids.filter(external_id__startswith="later-").values_list("id", flat=True))
    judged = set(verdicts_of(promotion.version).values_list("trace_id", flat=True))
    assert judged == sampled_before | after | (sampled(project) & later)
    assert len(after) == 100 and 0 < len(sampled(project) & later) < 100
    # Setting what is already in force writes nothing.
    assert series_traffic_set(series=series, all_traffic=False) == SeriesTraffic.objects.latest("id")
    assert SeriesTraffic.objects.filter(series=series).count() == 2


@pytest.fixture
def monitored(project):
    sampling_rate_set(project=project, rate=0.2)
    return promoted_judge(project)


def test_the_pages_say_which_traffic_each_series_is_judged_on(expert_client, project, monitored, settings):
    url = f"/projects/acme/monitoring/series/judge/{monitored.criterion_id}/traffic/"
    page = expert_client.get(f"/projects/acme/monitoring/{monitored.criterion_id}/").content.decode()
    assert 'Judges <strong class="traffic">a 20% sample of production traces</strong>' in page
    assert 'value="all"' in page
    assert ">20% sample<" in expert_client.get("/projects/acme/monitoring/").content.decode()

    assert expert_client.post(url, {"traffic": "all"}).status_code == 302
    page = expert_client.get(f"/projects/acme/monitoring/{monitored.criterion_id}/").content.decode()
    assert 'Judges <strong class="traffic">all production traces</strong>' in page
    assert 'value="sample"' in page
    assert ">all production traffic<" in expert_client.get("/projects/acme/monitoring/").content.decode()

    # Promoted in its place, an LLM judge is paid per trace: set to all traffic, it still judges the sample.
    with ScriptedLLMServer() as llm:
        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = llm.base_url, "k"
        llm.respond_with(verdict_by_content)
        judge = judge_create(
            project=project, criterion=monitored.criterion, name="gpt", kind="llm", config={"few_shot": 0}
        )
        for split in ("dev", "test"):
            judge_run_execute(run=judge_run_create(version=judge.latest_version(), split=split))
        bias_run_execute(run=bias_run_create(version=judge.latest_version()))  # LLM: promoted after its battery
        judge_version_promote(version=judge.latest_version())
    page = expert_client.get(f"/projects/acme/monitoring/{monitored.criterion_id}/").content.decode()
    assert 'Judges <strong class="traffic">a 20% sample of production traces</strong>' in page
    assert "Set to all production traffic, but gpt v1 is an LLM judge, paid per trace" in page
    assert ">20% sample<" in expert_client.get("/projects/acme/monitoring/").content.decode()
    response = expert_client.post(url, {"traffic": "everything"}, follow=True)
    assert "traffic: expected all or sample, got &#x27;everything&#x27;." in response.content.decode()


def test_engineers_set_the_traffic_viewers_cannot_and_outsiders_get_404(
    client, teammate_client, outsider_client, project, monitored
):
    url = f"/projects/acme/monitoring/series/judge/{monitored.criterion_id}/traffic/"
    assert outsider_client.post(url, {"traffic": "all"}).status_code == 404
    assert outsider_client.get(f"/projects/acme/monitoring/series/judge/{monitored.criterion_id}/").status_code == 404
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client.force_login(viewer)
    assert client.post(url, {"traffic": "all"}).status_code == 403
    page = client.get(f"/projects/acme/monitoring/{monitored.criterion_id}/").content.decode()
    assert "traffic-form" not in page
    assert not SeriesTraffic.objects.exists()
    assert teammate_client.post(url, {"traffic": "all"}).status_code == 302
    assert list(SeriesTraffic.objects.values_list("all_traffic", "set_by__username")) == [(True, "teammate")]
    # A criterion of another project, or one that does not exist, is a 404 like any other object.
    assert teammate_client.post("/projects/acme/monitoring/series/judge/999999/traffic/", {}).status_code == 404
    assert teammate_client.get("/projects/acme/monitoring/series/nobody/1/").status_code == 404
