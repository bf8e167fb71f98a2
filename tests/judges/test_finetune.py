"""export_finetune: the expert's train labels as chat-format JSONL in the LLM judge's own prompt and answer shape,
dev and test never; and an LLM judge pointed at the fine-tuned model's name measured and laddered like any other."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from judges.kinds.base import trace_input
from judges.pages import judge_list_sections
from judges.providers.llm import parse_answer, render_trace
from judges.selectors import labelled_trace_ids, split_key
from judges.services import judge_create, judge_run_create, judge_run_execute
from judges.splits import split_of
from tests.factories import make_criterion, make_label, make_trace
from tests.llm_server import Reply

pytestmark = pytest.mark.django_db
FINE_TUNED = "ft:gpt-4.1-mini:acme:no-apology:7f3a"


@pytest.fixture
def criterion(project):
    criterion = make_criterion(project=project, name="no_apology", definition="Fail when the reply apologises.")
    for i in range(80):
        apology = i % 3 == 0
        trace = make_trace(
            project=project,
            external_id=f"t-{i}",
            input=f"Question {i}?",
            output=f"Sorry, I can't ({i})." if apology else f"Here you go ({i}).",
            context=[f"Policy passage {i}."] if i % 4 == 0 else None,
        )
        # Every fifth label has no critique.
        critique = "" if i % 5 == 0 else f"Critique {i}: {'apologises' if apology else 'answers plainly'}."
        make_label(trace=trace, criterion=criterion, verdict="fail" if apology else "pass", critique=critique)
    return criterion


def export(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("export_finetune", "--project", "acme", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_every_train_label_with_a_critique_becomes_one_chat_line_and_no_held_out_trace_appears(criterion, tmp_path):
    path = tmp_path / "train.jsonl"
    _, err = export("--criterion", "no_apology", "--split", "train", str(path))
    key = split_key(criterion)
    train = {f"t-{i}" for i in range(80) if split_of(key, f"t-{i}") == "train"}
    with_critique = {e for e in train if int(e[2:]) % 5}
    lines = path.read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(with_critique) > 0
    exported = set()
    for line in lines:
        messages = json.loads(line)["messages"]
        assert [m["role"] for m in messages] == ["system", "user", "assistant"]
        assert "Criterion: no_apology" in messages[0]["content"]
        assert "Fail when the reply apologises." in messages[0]["content"]
        verdict, reasoning = parse_answer(messages[2]["content"])  # the answer shape the LLM judge parses
        number = int(reasoning.split(":")[0].removeprefix("Critique "))
        exported.add(f"t-{number}")
        trace = criterion.labels.get(trace__external_id=f"t-{number}").trace
        assert messages[1]["content"] == render_trace(trace_input(trace))
        assert verdict == ("fail" if number % 3 == 0 else "pass")
    assert exported == with_critique
    held_out = {f"t-{i}" for i in range(80)} - train
    text = path.read_text(encoding="utf-8")
    assert not any(f"({e[2:]})." in text or f"Question {e[2:]}?" in text for e in held_out)
    assert f"wrote {len(with_critique)} examples" in err
    assert f"skipped {len(train - with_critique)} train labels without a critique" in err
    assert f"{len(held_out)} dev/test labels held out" in err


def test_train_is_the_default_and_without_a_path_the_lines_go_to_stdout(criterion, tmp_path):
    out, _ = export("--criterion", "no_apology")
    path = tmp_path / "same.jsonl"
    export("--criterion", "no_apology", "--out", str(path))
    assert out == path.read_text(encoding="utf-8") and out.endswith("\n")
    assert not list(tmp_path.glob(".same.jsonl.*"))  # the temporary file was renamed, not left behind


@pytest.mark.parametrize("split", ["dev", "test"])
def test_held_out_splits_are_refused_and_nothing_is_written(criterion, tmp_path, split):
    path = tmp_path / "leak.jsonl"
    with pytest.raises(CommandError, match=f"'{split}' is held out and never exported for training") as refused:
        export("--criterion", "no_apology", "--split", split, str(path))
    assert refused.value.returncode == 1
    assert "measured on its own training data" in str(refused.value)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_unknown_project_criterion_and_split_are_named(criterion):
    with pytest.raises(CommandError, match="--project: no project 'nope'"):
        call_command("export_finetune", "--project", "nope", "--criterion", "no_apology", stdout=io.StringIO())
    with pytest.raises(
        CommandError, match=r"--criterion: project 'acme' has no criterion 'tone' \(criteria: no_apology\)"
    ):
        export("--criterion", "tone")
    with pytest.raises(CommandError, match="split: expected train \\(dev and test are held out\\), got 'all'"):
        export("--criterion", "no_apology", "--split", "all")
    with pytest.raises(CommandError, match="give PATH or --out, not both"):
        export("--criterion", "no_apology", "a.jsonl", "--out", "b.jsonl")


def test_a_criterion_without_critiques_exports_nothing_and_says_so(project):
    empty = make_criterion(project=project, name="terse")
    for i in range(10):
        make_label(trace=make_trace(project=project, external_id=f"e-{i}"), criterion=empty, verdict="pass")
    with pytest.raises(CommandError, match="nothing to export: no train label of this criterion has a critique"):
        export("--criterion", "terse")


@pytest.fixture
def llm_max_retries() -> int:
    return 1  # these tests count on the client retrying once


def fine_tuned_answer(request) -> Reply:
    graded = request.messages[-1]["content"]
    verdict = "fail" if "sorry" in graded.lower() else "pass"
    return Reply(content=json.dumps({"reasoning": f"Fine-tuned: {verdict}.", "verdict": verdict}))


def test_a_judge_on_the_fine_tuned_model_runs_like_any_llm_judge_and_shows_in_the_cost_ladder(
    criterion, llm_server, tmp_path
):
    path = tmp_path / "train.jsonl"
    export("--criterion", "no_apology", str(path))
    trained_on = json.loads(path.read_text(encoding="utf-8").splitlines()[0])["messages"]
    llm_server.respond_with(fine_tuned_answer)
    judge = judge_create(
        project=criterion.project, criterion=criterion, name="fine-tuned", kind="llm",
        config={"model": FINE_TUNED, "few_shot": 0, "prompt_price_per_million": 0.3,
                "completion_price_per_million": 1.2},
    )  # fmt: skip
    run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="test"))
    assert run.status == "done" and run.report["errors"] == 0
    assert run.report["n"] == len(labelled_trace_ids(criterion=criterion, split="test"))
    assert run.report["accuracy"] == 1.0
    requests = llm_server.chat_requests
    assert {r.json["model"] for r in requests} == {FINE_TUNED}
    # What the model was trained on is what it is asked: the same system turn, the trace as the last user turn.
    assert all(r.messages[0] == trained_on[0] and len(r.messages) == 2 for r in requests)

    regex = judge_create(
        project=criterion.project, criterion=criterion, name="regex", kind="assertion",
        config={"check": "regex", "pattern": "(?i)sorry", "must_match": False},
    )  # fmt: skip
    judge_run_execute(run=judge_run_create(version=regex.latest_version(), split="test"))
    (section,) = [s for s in judge_list_sections(project=criterion.project) if s.criterion == criterion]
    rungs = {rung.judge.name: rung for rung in section.ladder.rungs}
    assert set(rungs) == {"regex", "fine-tuned"}
    fine_tuned = rungs["fine-tuned"]
    assert fine_tuned.test_run == run
    assert fine_tuned.cost_per_1000 == pytest.approx(1000 * (10 * 0.3 + 5 * 1.2) / 1_000_000)
    assert [rung.judge.name for rung in section.ladder.rungs] == ["regex", "fine-tuned"]  # cheapest first
