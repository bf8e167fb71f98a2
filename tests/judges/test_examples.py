"""Few-shot examples from a run's disagreements, as a service: train traces only, appended in a new version."""

from __future__ import annotations

import pytest

from annotation.services import DomainError
from judges.examples import disagreement_example_states, judge_example_add
from judges.models import JudgeRun
from judges.selectors import split_key
from judges.services import judge_create, judge_run_create
from judges.splits import split_of
from tests.factories import make_criterion, make_label, make_trace

pytestmark = pytest.mark.django_db


@pytest.fixture
def criterion(project):
    criterion = make_criterion(project=project, name="no_apology")
    for i in range(60):
        trace = make_trace(project=project, external_id=f"t-{i:02d}", output="Sorry." if i % 2 else "Done.")
        make_label(trace=trace, criterion=criterion, verdict="fail" if i % 2 else "pass", critique=f"why {i}")
    make_trace(project=project, external_id="unlabelled")
    return criterion


def in_split(criterion, split: str) -> list[str]:
    return [f"t-{i:02d}" for i in range(60) if split_of(split_key(criterion), f"t-{i:02d}") == split]


@pytest.fixture
def llm_judge(project, criterion, expert):
    # few_shot 0: no examples picked and no provider call happens when a version is made.
    return judge_create(project=project, criterion=criterion, name="llm", kind="llm", config={"few_shot": 0})


@pytest.fixture
def run(llm_judge, settings) -> JudgeRun:
    settings.OPENAI_BASE_URL = "http://127.0.0.1:9/v1"  # configured, never called: these runs make no call
    return judge_run_create(version=llm_judge.latest_version(), split="all")


def test_adding_train_traces_appends_each_in_a_new_version_with_a_comment_naming_the_run(llm_judge, run, expert):
    first, second = in_split(llm_judge.criterion, "train")[:2]
    v2 = judge_example_add(judge=llm_judge, external_id=first, run=run, user=expert)
    v3 = judge_example_add(judge=llm_judge, external_id=second, run=run, user=expert)
    assert (v2.number, v2.config["examples"]) == (2, [first])
    assert (v3.number, v3.config["examples"]) == (3, [first, second])
    assert v3.comment == f"Added {second} as a few-shot example (a disagreement of run #{run.pk})"
    assert v3.created_by == expert


def test_a_trace_outside_train_unlabelled_unknown_or_already_there_is_refused_and_no_version_is_made(
    llm_judge, run, expert
):
    criterion = llm_judge.criterion
    dev, train = in_split(criterion, "dev")[0], in_split(criterion, "train")[0]
    judge_example_add(judge=llm_judge, external_id=train, run=run, user=expert)
    cases = [
        (dev, f"trace '{dev}' is in the dev split; only train traces can be examples"),
        ("unlabelled", "trace: 'unlabelled' has no expert label for 'no_apology'"),
        ("nope", "trace: 'nope' is not a trace of this project"),
        ("", "trace: name the trace to add as an example"),
        (train, f"trace '{train}' is already a few-shot example of v2"),
    ]
    for external_id, message in cases:
        with pytest.raises(DomainError) as refused:
            judge_example_add(judge=llm_judge, external_id=external_id, run=run, user=expert)
        assert str(refused.value).startswith(message)
    assert list(llm_judge.versions.values_list("number", flat=True)) == [1, 2]


def test_only_llm_judges_take_examples(project, criterion, expert):
    judge = judge_create(project=project, criterion=criterion, name="check", kind="assertion",
                         config={"check": "contains", "value": "sorry", "must_contain": False})  # fmt: skip
    run = judge_run_create(version=judge.latest_version(), split="all")
    with pytest.raises(DomainError, match="^only LLM judges take few-shot examples; this is a Assertion judge$"):
        judge_example_add(judge=judge, external_id=in_split(criterion, "train")[0], run=run, user=expert)
    assert disagreement_example_states(judge=judge, external_ids=["t-00"]) == {}


def test_example_states_say_addable_example_or_the_split_that_forbids_it(llm_judge, run, expert):
    criterion = llm_judge.criterion
    train = in_split(criterion, "train")
    dev, test = in_split(criterion, "dev")[0], in_split(criterion, "test")[0]
    judge_example_add(judge=llm_judge, external_id=train[0], run=run, user=expert)
    states = disagreement_example_states(judge=llm_judge, external_ids=[train[0], train[1], dev, test])
    assert states == {train[0]: "example", train[1]: "addable", dev: "dev", test: "test"}
