"""A judge's page: versions, new versions, diffs, the dev-split iteration history, prompt preview, and adding a
disagreement as a few-shot example — with who may see and do what."""

from __future__ import annotations

import json
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from annotation.models import Role
from judges.charts import history_chart, history_rows
from judges.models import Judge, JudgeRun, JudgeVersion, Judgment
from judges.selectors import split_key
from judges.services import judge_create, judge_run_create, judge_run_execute, judge_run_maybe_finish, judge_run_plan
from judges.splits import split_of
from judges.views_versions import config_diff, parse_diff_param
from tests.factories import add_member, make_criterion, make_label, make_trace, make_user

pytestmark = pytest.mark.django_db
APOLOGY = {"check": "contains", "value": "sorry", "ignore_case": True, "must_contain": False}


@pytest.fixture
def criterion(project):
    """40 labelled traces: the expert fails the apologetic ones (every third), with a critique on each."""
    criterion = make_criterion(project=project, name="no_apology", definition="Fail when the bot apologises.")
    for i in range(40):
        verdict = "fail" if i % 3 == 0 else "pass"
        output = "Sorry, no." if verdict == "fail" else "Done."
        trace = make_trace(project=project, external_id=f"t-{i:02d}", output=output)
        make_label(trace=trace, criterion=criterion, verdict=verdict, critique=f"Critique of t-{i:02d}")
    return criterion


@pytest.fixture
def judge(project, criterion, expert) -> Judge:
    return judge_create(
        project=project, criterion=criterion, name="apology-check", kind="assertion", config=APOLOGY, user=expert
    )


@pytest.fixture
def llm_judge(project, criterion, expert) -> Judge:
    # few_shot 0: no examples picked and no provider call happens when a version is made.
    return judge_create(
        project=project, criterion=criterion, name="apology-llm", kind="llm", config={"few_shot": 0}, user=expert
    )


def ids_in_split(criterion, split: str) -> list[str]:
    key = split_key(criterion)
    return [f"t-{i:02d}" for i in range(40) if split_of(key, f"t-{i:02d}") == split]


@pytest.fixture
def llm_run(llm_judge, settings) -> JudgeRun:
    """A finished run of the LLM judge over all labelled traces, from Judgment rows written here (no LLM call):
    the judge gets every trace wrong, so every trace is a disagreement."""
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # an endpoint is configured; nothing calls it
    run = judge_run_create(version=llm_judge.latest_version(), split="all")
    judge_run_plan(run=run)
    labels = {label.trace_id: label.verdict for label in llm_judge.criterion.labels.all()}
    Judgment.objects.bulk_create(
        [
            Judgment(run=run, trace_id=trace_id, verdict="pass" if verdict == "fail" else "fail", reasoning="r")
            for trace_id, verdict in labels.items()
        ]
    )
    assert judge_run_maybe_finish(run=run)
    run.refresh_from_db()
    return run


@pytest.fixture
def viewer_client(project) -> Client:
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    return client


def detail_url(judge: Judge) -> str:
    return reverse("judge_detail", args=["acme", judge.pk])


def create_url(judge: Judge) -> str:
    return reverse("judge_version_create", args=["acme", judge.pk])


def preview_url(judge: Judge, number: int) -> str:
    return reverse("judge_version_preview", args=["acme", judge.pk, number])


def example_url(run: JudgeRun) -> str:
    return reverse("judge_example_add", args=["acme", run.pk])


# --- the judge page and new versions ------------------------------------------------------------------------------


def test_judges_page_links_to_each_judge(expert_client, judge):
    html = expert_client.get(reverse("judge_list", args=["acme"])).content.decode()
    assert f'href="{detail_url(judge)}"' in html


def test_judge_page_lists_versions_with_pretty_config_and_prefilled_form(expert_client, judge):
    response = expert_client.get(detail_url(judge))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-version="1"' in html and "first version" in html
    assert "&quot;value&quot;: &quot;sorry&quot;" in html  # pretty JSON, escaped
    assert json.loads(response.context["form_config"]) == judge.latest_version().config


def test_expert_creates_a_version_with_the_posted_config(expert_client, judge, expert):
    config = {**APOLOGY, "value": "apolog"}
    response = expert_client.post(create_url(judge), {"config": json.dumps(config), "comment": "catch apologies"})
    assert response.status_code == 302 and response["Location"] == detail_url(judge)
    version = judge.versions.get(number=2)
    assert version.config["value"] == "apolog" and version.comment == "catch apologies"
    assert version.created_by == expert


def test_engineer_may_create_a_version(teammate_client, judge):
    response = teammate_client.post(create_url(judge), {"config": json.dumps({**APOLOGY, "value": "regret"})})
    assert response.status_code == 302
    assert judge.versions.count() == 2


def test_bad_json_is_shown_beside_the_config_field_and_nothing_is_created(expert_client, judge):
    response = expert_client.post(create_url(judge), {"config": '{"check": "contains",', "comment": "oops"})
    assert response.status_code == 400
    html = response.content.decode()
    assert re.search(r'id="config-error">config: not valid JSON — .* at line 1, column \d+', html)
    assert "{&quot;check&quot;: &quot;contains&quot;,</textarea>" in html  # the input is kept, escaped
    assert judge.versions.count() == 1


def test_unchanged_config_shows_the_services_message(expert_client, judge):
    config = judge.latest_version().config
    response = expert_client.post(create_url(judge), {"config": json.dumps(config)})
    assert response.status_code == 400
    assert "nothing changed: the config is the same as version 1" in response.content.decode()
    assert judge.versions.count() == 1


def test_invalid_config_shows_the_field_error(expert_client, judge):
    response = expert_client.post(create_url(judge), {"config": json.dumps({"check": "nonsense"})})
    assert response.status_code == 400
    assert response.context["form_errors"]["config"].startswith("config:")
    assert judge.versions.count() == 1


def test_llm_version_refuses_a_dev_example_with_the_leak_message(expert_client, llm_judge, criterion):
    dev_id = ids_in_split(criterion, "dev")[0]
    config = {**llm_judge.latest_version().config, "examples": [dev_id]}
    response = expert_client.post(create_url(llm_judge), {"config": json.dumps(config)})
    assert response.status_code == 400
    assert f"examples: trace &#x27;{dev_id}&#x27; is in the dev split" in response.content.decode()


def test_viewer_cannot_create_a_version_but_sees_the_page_without_the_form(viewer_client, judge):
    page = viewer_client.get(detail_url(judge))
    assert page.status_code == 200 and 'id="new-version"' not in page.content.decode()
    response = viewer_client.post(create_url(judge), {"config": json.dumps({**APOLOGY, "value": "x"})})
    assert response.status_code == 403
    assert judge.versions.count() == 1


def test_outsider_gets_404_on_every_judge_page_and_post(outsider_client, judge, llm_judge, llm_run):
    assert outsider_client.get(detail_url(judge)).status_code == 404
    assert outsider_client.post(create_url(judge), {"config": "{}"}).status_code == 404
    assert outsider_client.get(preview_url(llm_judge, 1) + "?trace=t-00").status_code == 404
    assert outsider_client.post(example_url(llm_run), {"trace": "t-00"}).status_code == 404
    assert JudgeVersion.objects.filter(judge__in=[judge, llm_judge]).count() == 2


def test_judge_of_another_project_is_404(expert_client, expert):
    from tests.factories import make_project

    other = make_project(slug="other", expert=make_user("other-expert"))
    criterion = make_criterion(project=other)
    foreign = judge_create(project=other, criterion=criterion, name="x", kind="assertion", config=APOLOGY)
    assert expert_client.get(reverse("judge_detail", args=["acme", foreign.pk])).status_code == 404


def test_posts_need_a_csrf_token(expert, judge, llm_run):
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    assert client.post(create_url(judge), {"config": json.dumps({**APOLOGY, "value": "x"})}).status_code == 403
    assert client.post(example_url(llm_run), {"trace": "t-00"}).status_code == 403
    assert judge.versions.count() == 1 and llm_run.version.judge.versions.count() == 1


# --- diffs ----------------------------------------------------------------------------------------------------------


def test_diff_shows_the_changed_key_as_removed_and_added_lines(expert_client, judge, expert):
    expert_client.post(create_url(judge), {"config": json.dumps({**APOLOGY, "value": "<b>regret</b>"})})
    response = expert_client.get(detail_url(judge) + "?diff=1..2")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<span class="removed">-  &quot;value&quot;: &quot;sorry&quot;</span>' in html
    assert '<span class="added">+  &quot;value&quot;: &quot;&lt;b&gt;regret&lt;/b&gt;&quot;</span>' in html
    assert "<b>regret</b>" not in html
    # Unchanged keys are context, not changes.
    kinds = {line.kind for line in response.context["diff_lines"] if "must_contain" in line.text}
    assert kinds == {"context"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("1-2", "diff: expected two version numbers like 1..2, got &#x27;1-2&#x27;"),
        ("1..7", "diff: version 7 does not exist (versions: 1)"),
        ("1..1", "diff: pick two different versions, got 1 twice"),
    ],
)
def test_bad_diff_parameter_is_explained(expert_client, judge, raw, message):
    response = expert_client.get(detail_url(judge), {"diff": raw})
    assert response.status_code == 400
    assert message in response.content.decode()


def test_config_diff_tags_lines():
    lines = config_diff({"a": 1, "b": 2}, {"a": 1, "b": 3}, old_name="v1", new_name="v2")
    assert [(line.kind, line.text) for line in lines if line.kind in {"added", "removed"}] == [
        ("removed", '-  "b": 2'),
        ("added", '+  "b": 3'),
    ]
    assert lines[0].kind == "header" and lines[2].kind == "hunk"


def test_parse_diff_param_accepts_spaces_and_either_order():
    assert parse_diff_param(" 2 .. 1 ", {1, 2}) == ((2, 1), None)


# --- few-shot examples from disagreements ---------------------------------------------------------------------------


def test_run_page_offers_train_disagreements_and_explains_dev_and_test(expert_client, llm_run, criterion):
    html = expert_client.get(reverse("judge_run_detail", args=["acme", llm_run.pk])).content.decode()
    rows = dict(re.findall(r'<tr data-trace="(t-\d+)">(.*?)</tr>', html, flags=re.S))
    assert len(rows) == 25  # the first page of 40 disagreements
    for external_id, row in rows.items():
        split = split_of(split_key(criterion), external_id)
        if split == "train":
            assert "Add as few-shot example" in row and f'value="{external_id}"' in row
        else:
            assert "Add as few-shot example" not in row
            assert f'data-example-state="{split}"' in row and "it would leak" in row


def test_adding_a_train_disagreement_makes_a_version_with_it_appended(expert_client, llm_run, criterion):
    judge = llm_run.version.judge
    first, second = ids_in_split(criterion, "train")[:2]
    assert expert_client.post(example_url(llm_run), {"trace": first}).status_code == 302
    response = expert_client.post(example_url(llm_run), {"trace": second})
    assert response.status_code == 302 and response["Location"] == detail_url(judge)
    versions = list(judge.versions.order_by("number"))
    assert [v.config["examples"] for v in versions] == [[], [first], [first, second]]
    assert versions[2].config["model"] == versions[0].config["model"]
    assert f"Added {second} as a few-shot example" in versions[2].comment


def test_a_dev_disagreement_cannot_be_added(expert_client, llm_run, criterion):
    dev_id = ids_in_split(criterion, "dev")[0]
    response = expert_client.post(example_url(llm_run), {"trace": dev_id}, follow=True)
    assert "is in the dev split; only train traces can be examples" in response.content.decode().replace("&#x27;", "'")
    assert llm_run.version.judge.versions.count() == 1


@pytest.mark.parametrize(
    ("trace", "message"),
    [
        ("", "trace: name the trace to add as an example"),
        ("nope", "trace: 'nope' is not a trace of this project"),
    ],
)
def test_bad_example_input_is_explained(expert_client, llm_run, trace, message):
    response = expert_client.post(example_url(llm_run), {"trace": trace}, follow=True)
    assert message in response.content.decode().replace("&#x27;", "'")
    assert llm_run.version.judge.versions.count() == 1


def test_adding_the_same_example_twice_is_refused(expert_client, llm_run, criterion):
    train_id = ids_in_split(criterion, "train")[0]
    expert_client.post(example_url(llm_run), {"trace": train_id})
    response = expert_client.post(example_url(llm_run), {"trace": train_id}, follow=True)
    assert "is already a few-shot example of v2" in response.content.decode()
    assert llm_run.version.judge.versions.count() == 2


def test_assertion_judge_run_has_no_example_buttons_and_refuses_examples(expert_client, judge, criterion):
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="all"))
    assert (
        "Add as few-shot example"
        not in expert_client.get(reverse("judge_run_detail", args=["acme", run.pk])).content.decode()
    )
    response = expert_client.post(example_url(run), {"trace": ids_in_split(criterion, "train")[0]}, follow=True)
    assert "only LLM judges take few-shot examples" in response.content.decode()


def test_viewer_gets_403_adding_an_example_and_sees_no_button(viewer_client, llm_run, criterion):
    html = viewer_client.get(reverse("judge_run_detail", args=["acme", llm_run.pk])).content.decode()
    assert "Add as few-shot example" not in html
    response = viewer_client.post(example_url(llm_run), {"trace": ids_in_split(criterion, "train")[0]})
    assert response.status_code == 403
    assert llm_run.version.judge.versions.count() == 1


# --- prompt preview -------------------------------------------------------------------------------------------------


def test_prompt_preview_shows_each_message_escaped_with_the_examples_critique(
    expert_client, llm_judge, criterion, project
):
    train_id = ids_in_split(criterion, "train")[0]
    from judges.services import judge_version_create

    judge_version_create(judge=llm_judge, config={**llm_judge.latest_version().config, "examples": [train_id]})
    make_trace(project=project, external_id="evil", output="<script>alert(1)</script>")
    response = expert_client.get(preview_url(llm_judge, 2), {"trace": "evil"})
    assert response.status_code == 200
    html = response.content.decode()
    prompt = response.context["prompt"]
    # system, the example as a user/assistant pair, then the trace to judge.
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
    assert re.findall(r'data-role="(\w+)"', html) == ["system", "user", "assistant", "user"]
    assert f"Critique of {train_id}" in html  # critique shadowing: the expert's words are the example's reasoning
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert(1)" not in html


def test_prompt_preview_errors_are_explained(expert_client, llm_judge, judge):
    missing = expert_client.get(preview_url(llm_judge, 1), {"trace": "nope"})
    assert missing.status_code == 400
    assert "trace: &#x27;nope&#x27; is not a trace of this project" in missing.content.decode()
    not_llm = expert_client.get(preview_url(judge, 1), {"trace": "t-00"})
    assert not_llm.status_code == 400 and "only LLM judges have a prompt" in not_llm.content.decode()
    assert expert_client.get(preview_url(llm_judge, 9), {"trace": "t-00"}).status_code == 404


def test_viewer_may_preview_a_prompt(viewer_client, llm_judge):
    assert viewer_client.get(preview_url(llm_judge, 1), {"trace": "t-01"}).status_code == 200


# --- iteration history ----------------------------------------------------------------------------------------------


def test_history_shows_each_versions_latest_dev_run_in_table_and_chart(expert_client, judge, expert):
    expert_client.post(create_url(judge), {"config": json.dumps({**APOLOGY, "value": "no"})})
    v1, v2 = judge.versions.order_by("number")
    runs = [judge_run_execute(run=judge_run_create(version=v, split="dev")) for v in (v1, v2)]
    # A later train run must not replace the dev figures.
    judge_run_execute(run=judge_run_create(version=v2, split="train"))
    with CaptureQueriesContext(connection) as queries:
        response = expert_client.get(detail_url(judge))
    # A fixed number of queries whatever the number of versions and runs (the bias battery, guardrail marks and the
    # stale-definition check each added one or two).
    assert len(queries) < 24
    html = response.content.decode()
    history = {row.number: row for row in response.context["history"]}
    for version, run in zip((v1, v2), runs, strict=True):
        assert history[version.number].run.pk == run.pk
        assert history[version.number].metrics["tpr"][0] == run.report["tpr"]
    points = re.findall(r'<g class="point (\w+)" data-version="(\d)"', html)
    assert {(m, int(v)) for m, v in points} >= {("tpr", 1), ("tnr", 1), ("tpr", 2), ("tnr", 2)}
    assert 'class="target"' in html and "<script" not in html.split("<main", 1)[-1]


def test_history_chart_places_points_with_whiskers_and_target():
    class Run:
        report = {"tpr": 1.0, "tnr": 0.5, "kappa": None, "ci": {"tpr": [0.8, 1.0], "tnr": [0.25, 0.75]}}

    chart = history_chart(history_rows([2, 1], {1: Run()}), target=0.9)
    assert [tick.label for tick in chart.x_ticks] == ["v1"]
    tpr, tnr = chart.points  # κ undefined: not drawn
    assert tpr.y < chart.target.y < tnr.y  # 1.0 above the 0.9 line, 0.5 below it
    assert tnr.high_y < tnr.y < tnr.low_y
    assert chart.target.y == pytest.approx(36 + (1.0 - 0.9) / 1.2 * (220 - 72), abs=0.1)


def test_history_says_when_no_dev_run_exists(expert_client, judge):
    html = expert_client.get(detail_url(judge)).content.decode()
    assert "No version has a finished dev run yet." in html and "no finished dev run" in html
