"""A judge version freezes everything its verdicts depend on when it is made: an LLM judge's rubric, criterion name
and definition, and its few-shot examples (verdict, critique, the trace as the prompt shows it). Later edits to the
definition or a critique change nothing it sends; its pages say it is built on an older state and offer a new
version from current labels. Few-shot examples come only from critiqued train labels."""

from __future__ import annotations

import importlib
import json
import re

import pytest
from django.apps import apps
from django.test import Client
from django.urls import reverse

from annotation.models import Label, Role
from annotation.services import DomainError, criterion_update, label_submit
from judges.kinds import versions_drift
from judges.kinds.llm import prompt_preview
from judges.models import LLMResponse, Promotion
from judges.providers import ConfigError, TraceInput
from judges.providers.llm import Example, build_messages, render_trace
from judges.selectors import split_key
from judges.services import (
    judge_create,
    judge_run_create,
    judge_run_execute,
    judge_version_create,
    judge_version_from_current_labels,
)
from judges.splits import split_of
from tests.factories import add_member, make_criterion, make_label, make_trace, make_user
from tests.llm_server import Reply

pytestmark = pytest.mark.django_db
DEFINITION = "Fail when the reply apologises."


def verdicts_with_both_in_train(criterion, prefix: str) -> list[tuple[str, str]]:
    """(external id, verdict) for 60 traces, every third a fail, and more while the train split (20%, by a hash
    seeded per project) lacks a pass or a fail, so the few-shot picker always has both to balance."""
    key = split_key(criterion)
    cases: list[tuple[str, str]] = []
    while len(cases) < 60 or {v for e, v in cases if split_of(key, e) == "train"} != {"pass", "fail"}:
        cases.append((f"{prefix}-{len(cases):02d}", "fail" if len(cases) % 3 == 0 else "pass"))
    return cases


@pytest.fixture
def criterion(project):
    """60-odd labelled traces, every third an apology the expert fails; every label has a critique."""
    criterion = make_criterion(project=project, name="no_apology", definition=DEFINITION)
    for external_id, verdict in verdicts_with_both_in_train(criterion, "t"):
        output = "Sorry, no." if verdict == "fail" else "Done."
        trace = make_trace(project=project, external_id=external_id, output=output)
        make_label(trace=trace, criterion=criterion, verdict=verdict, critique=f"Critique of {external_id}.")
    return criterion


def in_split(criterion, split: str) -> list[str]:
    key = split_key(criterion)
    labelled = criterion.labels.values_list("trace__external_id", flat=True)
    return [external_id for external_id in labelled if split_of(key, external_id) == split]


def fails_apologies(request) -> Reply:
    verdict = "fail" if "Sorry" in request.messages[-1]["content"] else "pass"
    return Reply(content=json.dumps({"reasoning": "Looked for an apology.", "verdict": verdict}))


@pytest.fixture
def llm_max_retries() -> int:
    return 1  # these tests count on the client retrying once


@pytest.fixture
def llm_server(llm_server):
    llm_server.respond_with(fails_apologies)
    return llm_server


@pytest.fixture
def judge(project, criterion, expert):
    return judge_create(
        project=project, criterion=criterion, name="apology-llm", kind="llm",
        config={"few_shot": 2, "model": "test-model"}, user=expert,
    )  # fmt: skip


def edit_definition_and_a_critique(criterion, example_id: str, expert) -> None:
    """What the expert does after the version was made: through the same services the pages use."""
    criterion_update(criterion=criterion, name=criterion.name, definition="Fail on any apology or regret.",
                     failure_mode=None)  # fmt: skip
    trace = criterion.project.traces.get(external_id=example_id)
    label = Label.objects.get(criterion=criterion, trace=trace)
    label_submit(trace=trace, criterion=criterion, verdict=label.verdict, critique="A sharper critique.", user=expert)


# --- the frozen prompt ---------------------------------------------------------------------------------------------


def test_editing_the_definition_or_a_critique_leaves_a_promoted_versions_prompt_byte_for_byte_unchanged(
    project, criterion, judge, expert, llm_server
):
    version = judge.latest_version()
    # Promoted as suites and monitoring find it (the row, not the evidence rules: those are tested elsewhere).
    Promotion.objects.create(criterion=criterion, version=version, min_tpr=0.9, min_tnr=0.9)
    graded = make_trace(project=project, external_id="new", output="Sorry!")
    preview_before = prompt_preview(version=version, trace=graded)
    judge_run_execute(run=judge_run_create(version=version, split="dev"))
    sent_before = sorted(json.dumps(r.messages) for r in llm_server.chat_requests)
    assert len(sent_before) == len(in_split(criterion, "dev"))

    edit_definition_and_a_critique(criterion, version.config["examples"][0], expert)
    LLMResponse.objects.all().delete()  # so the second run asks the server again rather than reading its answers
    promoted = Promotion.objects.get(criterion=criterion, ended_at=None).version

    assert prompt_preview(version=promoted, trace=graded) == preview_before
    run = judge_run_execute(run=judge_run_create(version=promoted, split="dev"))
    sent_after = sorted(json.dumps(r.messages) for r in llm_server.chat_requests[len(sent_before) :])
    assert run.status == "done" and sent_after == sent_before
    assert DEFINITION in preview_before[0]["content"]
    assert json.loads(preview_before[2]["content"])["reasoning"] == f"Critique of {version.config['examples'][0]}."


def test_the_snapshot_holds_the_definition_the_examples_labels_and_their_traces_as_shown(criterion, judge):
    version = judge.latest_version()
    snapshot = version.snapshot
    first, second = version.config["examples"]
    assert (snapshot["criterion"], snapshot["definition"]) == ("no_apology", DEFINITION)
    assert [e["trace"] for e in snapshot["examples"]] == [first, second]
    assert {e["verdict"] for e in snapshot["examples"]} == {"pass", "fail"}  # balanced
    assert snapshot["examples"][0]["critique"] == f"Critique of {first}."
    trace = criterion.project.traces.get(external_id=first)
    assert snapshot["shown"][first] == render_trace(TraceInput(first, input=trace.input, output=trace.output))


def test_a_trace_edited_after_the_version_is_still_shown_as_it_was(project, criterion, judge):
    version = judge.latest_version()
    example = version.config["examples"][0]
    before = prompt_preview(version=version, trace=make_trace(project=project, external_id="new"))
    project.traces.filter(external_id=example).update(output="Rewritten by a later import.")
    after = prompt_preview(version=version, trace=project.traces.get(external_id="new"))
    assert after == before and "Rewritten" not in json.dumps(after)


# --- critiqued examples only, and no placeholder -----------------------------------------------------------------


def test_no_prompt_holds_a_placeholder_for_a_missing_critique():
    examples = [Example(render_trace(TraceInput("e", output="9 to 5.")), "pass", "  ")]
    with pytest.raises(ConfigError, match="^example 1: has no critique; every few-shot example needs the expert's"):
        build_messages(criterion="c", definition="", instructions="", examples=examples, trace=TraceInput("t"))


@pytest.fixture
def sparse_criterion(project):
    """60-odd labelled traces of which only two train labels (a pass and a fail) have a critique."""
    criterion = make_criterion(project=project, name="sparse", definition="Fail on apologies.")
    key = split_key(criterion)
    critiqued = {"pass": None, "fail": None}
    for external_id, verdict in verdicts_with_both_in_train(criterion, "s"):
        critique = ""
        if split_of(key, external_id) == "train" and critiqued[verdict] is None:
            critiqued[verdict] = external_id
            critique = f"Why {external_id} {verdict}s."
        trace = make_trace(project=project, external_id=external_id, output="Sorry." if verdict == "fail" else "Ok.")
        make_label(trace=trace, criterion=criterion, verdict=verdict, critique=critique)
    assert None not in critiqued.values()
    criterion.critiqued = critiqued
    return criterion


def test_the_picker_takes_only_critiqued_train_labels_and_refuses_to_ask_for_more(project, sparse_criterion):
    judge = judge_create(project=project, criterion=sparse_criterion, name="two", kind="llm", config={"few_shot": 2})
    assert sorted(judge.latest_version().config["examples"]) == sorted(sparse_criterion.critiqued.values())
    with pytest.raises(DomainError) as refused:
        judge_create(project=project, criterion=sparse_criterion, name="six", kind="llm", config={"few_shot": 6})
    assert str(refused.value) == "few_shot: 6 asked, 2 train labels of this criterion have a critique"
    with pytest.raises(DomainError, match="^few_shot: 3 asked, 2 train labels"):
        judge_version_create(judge=judge, config={"few_shot": 3})
    assert judge.versions.count() == 1


def test_a_listed_example_without_a_critique_is_refused_naming_it(project, sparse_criterion):
    bare = next(e for e in in_split(sparse_criterion, "train") if e not in sparse_criterion.critiqued.values())
    with pytest.raises(DomainError) as refused:
        judge_create(project=project, criterion=sparse_criterion, name="bare", kind="llm", config={"examples": [bare]})
    assert str(refused.value).startswith(f"examples: trace '{bare}' has no critique for 'sparse'")


# --- drift, and a new version from current labels -----------------------------------------------------------------


def test_drift_says_what_changed_since_the_version_was_made(project, criterion, judge, expert):
    version = judge.latest_version()
    assert versions_drift([version.pk]) == {}
    first, second = version.config["examples"]
    edit_definition_and_a_critique(criterion, first, expert)
    trace = project.traces.get(external_id=second)
    flipped = "pass" if Label.objects.get(criterion=criterion, trace=trace).verdict == "fail" else "fail"
    label_submit(trace=trace, criterion=criterion, verdict=flipped, critique="Changed my mind.", user=expert)
    drift = versions_drift([version.pk])[version.pk]
    assert drift.headline == "is built on an older definition and older critiques"
    assert drift.changes == (
        "the criterion's definition was edited",
        f"the critique of example {first} was edited",
        f"the verdict of example {second} (now {flipped}) changed",
        # Any kind: made under an earlier definition, with the labels made (or confirmed) under the newer one.
        "made under definition v1, the criterion is at v2 now, with 2 labels made under a newer definition: "
        "measure a new version on them",
    )
    Label.objects.filter(criterion=criterion, trace=trace).delete()
    criterion_update(criterion=criterion, name="no_regret", definition=DEFINITION, failure_mode=None)
    assert versions_drift([version.pk])[version.pk].changes == (
        "the criterion was renamed from 'no_apology' to 'no_regret'",
        f"the critique of example {first} was edited",
        f"the label of example {second} was removed",
        "made under definition v1, the criterion is at v3 now, with 1 label made under a newer definition: "
        "measure a new version on them",
    )


def test_a_new_version_from_current_labels_freezes_the_current_state_and_leaves_the_old_one(
    project, criterion, judge, expert
):
    v1 = judge.latest_version()
    graded = make_trace(project=project, external_id="new")
    before = prompt_preview(version=v1, trace=graded)
    example = v1.config["examples"][0]
    edit_definition_and_a_critique(criterion, example, expert)
    v2 = judge_version_from_current_labels(version=v1, user=expert)
    assert (v2.number, v2.config, v2.created_by) == (2, v1.config, expert)
    assert v2.comment == (
        f"v1 on current labels (the criterion's definition was edited; the critique of example {example} was edited; "
        "made under definition v1, the criterion is at v2 now, with 1 label made under a newer definition: "
        "measure a new version on them)"
    )
    now = prompt_preview(version=v2, trace=graded)
    assert "Fail on any apology or regret." in now[0]["content"]
    assert json.loads(now[2]["content"])["reasoning"] == "A sharper critique."
    v1.refresh_from_db()
    assert prompt_preview(version=v1, trace=graded) == before
    assert set(versions_drift([v1.pk, v2.pk])) == {v1.pk}
    with pytest.raises(DomainError, match="^nothing changed: v2 is built on the current definition and labels of"):
        judge_version_from_current_labels(version=v2, user=expert)


def test_a_new_version_from_current_labels_is_refused_when_an_examples_critique_was_removed(criterion, judge, expert):
    v1 = judge.latest_version()
    example = v1.config["examples"][0]
    trace = criterion.project.traces.get(external_id=example)
    verdict = Label.objects.get(criterion=criterion, trace=trace).verdict
    label_submit(trace=trace, criterion=criterion, verdict=verdict, critique="", user=expert)
    with pytest.raises(DomainError, match=f"^examples: trace '{example}' has no critique for 'no_apology'"):
        judge_version_from_current_labels(version=v1, user=expert)
    assert judge.versions.count() == 1


def test_the_migration_freezes_existing_versions_as_they_would_be_sent_today(project, criterion, judge):
    migration = importlib.import_module("judges.migrations.0009_judge_version_snapshot_freezes_the_llm_prompt")
    version = judge.latest_version()
    graded = make_trace(project=project, external_id="new")
    built = prompt_preview(version=version, trace=graded)
    assertion = judge_create(project=project, criterion=criterion, name="check", kind="assertion",
                             config={"check": "contains", "value": "sorry", "must_contain": False})  # fmt: skip
    type(version).objects.update(snapshot={})
    bare = make_trace(project=project, external_id="bare", output="Fine.")
    make_label(trace=bare, criterion=criterion, verdict="pass", critique="")
    legacy = type(version).objects.create(
        judge=judge, number=2, config={**version.config, "examples": [version.config["examples"][0], "bare"]}
    )
    lost = type(version).objects.create(judge=judge, number=3, config={**version.config, "examples": ["gone"]})
    migration.freeze_llm_prompts(apps, None)
    version.refresh_from_db()
    legacy.refresh_from_db()
    lost.refresh_from_db()
    assert prompt_preview(version=version, trace=graded) == built
    # What the prompt held for an uncritiqued example is kept as it was, and the version says it differs.
    assert json.loads(prompt_preview(version=legacy, trace=graded)[4]["content"])["reasoning"] == (
        "The expert graded this pass without further comment."
    )
    assert versions_drift([legacy.pk])[legacy.pk].changes == ("the critique of example bare was edited",)
    with pytest.raises(DomainError, match="^apology-llm v3 cannot run: its few-shot example 'gone' had no label"):
        prompt_preview(version=lost, trace=graded)
    drift = versions_drift([lost.pk])[lost.pk]
    assert (drift.headline, drift.runs) == ("cannot run", False)
    with pytest.raises(DomainError, match="^examples: trace 'gone' is not a trace of this project"):
        judge_version_from_current_labels(version=lost)
    assert assertion.latest_version().snapshot == {}


# --- the pages -----------------------------------------------------------------------------------------------------


def detail_url(judge) -> str:
    return reverse("judge_detail", args=["acme", judge.pk])


def refresh_url(judge, number: int) -> str:
    return reverse("judge_version_from_current_labels", args=["acme", judge.pk, number])


def test_the_judge_and_judges_pages_mark_a_drifted_version_and_say_what_changed(
    expert_client, criterion, judge, expert
):
    example = judge.latest_version().config["examples"][0]
    html = expert_client.get(detail_url(judge)).content.decode()
    assert "version-drift" not in html
    edit_definition_and_a_critique(criterion, example, expert)
    for url in (detail_url(judge), reverse("judge_list", args=["acme"])):
        html = expert_client.get(url).content.decode()
        marks = re.findall(r'<div class="warning version-drift" data-version="(\d+)".*?</div>', html, flags=re.S)
        assert marks == ["1"], url
        assert "v1 is built on an older definition and older critiques" in html
        assert f"the critique of example {example} was edited" in html
        assert f'action="{refresh_url(judge, 1)}"' in html and "New version from current labels" in html


def test_the_judge_page_shows_what_each_version_froze_escaped(expert_client, project, criterion, judge, expert):
    example = judge.latest_version().config["examples"][0]
    trace = project.traces.get(external_id=example)
    label = Label.objects.get(criterion=criterion, trace=trace)
    label_submit(trace=trace, criterion=criterion, verdict=label.verdict, critique="<b>bold</b> claim", user=expert)
    judge_version_from_current_labels(version=judge.latest_version(), user=expert)
    html = expert_client.get(detail_url(judge)).content.decode()
    frozen = dict(re.findall(r'<details class="frozen" data-version="(\d+)">(.*?)</details>', html, flags=re.S))
    assert DEFINITION in frozen["1"] and f"Critique of {example}." in frozen["1"]
    assert "&lt;b&gt;bold&lt;/b&gt; claim" in frozen["2"] and "<b>bold</b>" not in html
    diff = expert_client.get(detail_url(judge) + "?diff=1..2").content.decode()
    assert f"Critique of {example}." in diff and "&lt;b&gt;bold&lt;/b&gt; claim" in diff


def test_one_click_makes_the_new_version_and_lands_on_the_judge_page(expert_client, teammate_client, criterion, judge,
                                                                      expert):  # fmt: skip
    edit_definition_and_a_critique(criterion, judge.latest_version().config["examples"][0], expert)
    response = expert_client.post(refresh_url(judge, 1))
    assert response.status_code == 302 and response["Location"] == detail_url(judge)
    assert judge.versions.count() == 2
    # Nothing left to refresh: said, not a second identical version.
    again = teammate_client.post(refresh_url(judge, 1), follow=True)
    assert "nothing changed: the config is the same as version 2" in again.content.decode()
    assert judge.versions.count() == 2
    assert expert_client.post(refresh_url(judge, 9)).status_code == 404


def test_a_viewer_sees_the_mark_without_the_button_and_gets_403_outsiders_404_and_csrf_is_needed(
    project, outsider_client, criterion, judge, expert
):
    edit_definition_and_a_critique(criterion, judge.latest_version().config["examples"][0], expert)
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    html = client.get(detail_url(judge)).content.decode()
    assert "v1 is built on an older definition" in html and "New version from current labels" not in html
    assert client.post(refresh_url(judge, 1)).status_code == 403
    assert outsider_client.post(refresh_url(judge, 1)).status_code == 404
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(expert)
    assert strict.post(refresh_url(judge, 1)).status_code == 403
    assert judge.versions.count() == 1
