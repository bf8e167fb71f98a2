"""The demo data (generator and committed JSONL) and the `load_demo` command behind `make run`."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError

from annotation.models import Criterion, Label, Note, Project, Role, Trace
from demo.generate import CRITERIA, DEFAULT_OUT, generate
from judges.models import Judge, JudgeRun

CRITERION_NAMES = {name for name, _ in CRITERIA}


def _lines() -> list[dict[str, Any]]:
    return [json.loads(line) for line in DEFAULT_OUT.read_text(encoding="utf-8").splitlines()]


def _kind(record: dict[str, Any]) -> str:
    # The app's own definition of a trace's kind, on an unsaved row.
    return Trace(messages=record.get("messages"), context=record.get("context")).kind


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return _lines()


def test_generator_writes_the_same_bytes_twice(tmp_path: Path):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    count = generate(first)
    generate(second)
    assert count >= 150
    assert first.read_bytes() == second.read_bytes()


def test_committed_demo_file_is_what_the_generator_writes(tmp_path: Path):
    fresh = tmp_path / "demo.jsonl"
    generate(fresh)
    assert fresh.read_bytes() == DEFAULT_OUT.read_bytes(), "run `python -m demo.generate` and commit"


def test_demo_file_stays_small_enough_to_commit():
    assert DEFAULT_OUT.stat().st_size < 600_000


def test_every_line_is_a_trace_in_the_documented_format(records):
    assert len(records) >= 150
    ids = [record["id"] for record in records]
    assert len(set(ids)) == len(ids)
    for record in records:
        assert record.keys() & {"input", "output", "messages"}, record["id"]
        assert record["source"] in {"production", "synthetic"}
        datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
        assert {"model", "locale", "channel"} <= record["metadata"].keys()
        for message in record.get("messages") or []:
            assert message["role"] in {"system", "user", "assistant", "tool"}


def test_all_four_kinds_are_present(records):
    kinds = Counter(_kind(record) for record in records)
    assert set(kinds) == {"single-turn", "chat", "rag", "agent"}
    assert min(kinds.values()) >= 30


def test_tool_calls_use_the_openai_format_and_every_result_answers_a_call(records):
    agents = [record for record in records if _kind(record) == "agent"]
    for record in agents:
        open_calls: set[str] = set()
        for message in record["messages"]:
            if message.get("tool_calls"):
                assert message["role"] == "assistant" and message["content"] is None
                for call in message["tool_calls"]:
                    assert call["type"] == "function"
                    assert isinstance(json.loads(call["function"]["arguments"]), dict)
                    open_calls.add(call["id"])
            if message["role"] == "tool":
                assert message["tool_call_id"] in open_calls, record["id"]
        final = record["messages"][-1]
        assert final["role"] == "assistant" and final["content"], record["id"]


def test_agent_tasks_have_several_trials(records):
    trials: dict[str, list[int]] = {}
    for record in records:
        if record.get("task_id"):
            trials.setdefault(record["task_id"], []).append(record["trial"])
    assert len(trials) >= 3
    for numbers in trials.values():
        assert sorted(numbers) == list(range(1, len(numbers) + 1))
        assert len(numbers) >= 3


def test_about_sixty_traces_carry_labels_on_both_criteria(records):
    labelled = [record for record in records if record.get("labels")]
    assert 50 <= len(labelled) <= 70
    verdicts = Counter((label["criterion"], label["verdict"]) for r in labelled for label in r["labels"])
    for name in CRITERION_NAMES:
        assert verdicts[(name, "pass")] > 0 and verdicts[(name, "fail")] > 0
    assert all(label["critique"].strip() for r in labelled for label in r["labels"])
    assert all(record.get("notes") for record in labelled)


def test_some_notes_are_coded_to_failure_modes_but_most_are_plain(records):
    notes = [note for record in records for note in record.get("notes", [])]
    coded = [note for note in notes if isinstance(note, dict)]
    assert 5 <= len(coded) < len(notes) / 2
    assert len({mode for note in coded for mode in note["failure_modes"]}) >= 4


def test_demo_includes_a_long_chat_and_pasted_html(records):
    assert sum(len(record.get("messages") or []) >= 100 for record in records) >= 2
    assert any("<script>" in json.dumps(record) for record in records)


def _load_demo() -> str:
    out = StringIO()
    call_command("load_demo", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_load_demo_refuses_with_debug_off(settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="only runs with DEBUG on"):
        _load_demo()
    assert not User.objects.filter(username="demo").exists()
    assert not Project.objects.filter(slug="demo").exists()


@pytest.mark.django_db
def test_load_demo_creates_user_project_criteria_and_traces(settings, records):
    settings.DEBUG = True
    output = _load_demo()
    user = User.objects.get(username="demo")
    assert user.check_password("demo")
    project = Project.objects.get(slug="demo")
    assert project.expert == user
    assert project.memberships.get(user=user).role == Role.EXPERT
    criteria = {criterion.name: criterion for criterion in Criterion.objects.filter(project=project)}
    assert set(criteria) == CRITERION_NAMES
    assert all(criterion.definition for criterion in criteria.values())
    assert project.traces.count() == len(records)
    expected_labels = sum(len(record.get("labels", [])) for record in records)
    assert Label.objects.filter(trace__project=project, author=user).count() == expected_labels
    assert Note.objects.filter(trace__project=project).count() == sum(len(r.get("notes", [])) for r in records)
    assert f"{len(records)} traces created" in output
    # Two cheap judges, measured on dev, so the judges page has something to show.
    runs = JudgeRun.objects.filter(version__judge__project=project)
    assert sorted(runs.values_list("version__judge__name", "split", "status")) == [
        ("grounded-tfidf", "dev", "done"),
        ("no-promises-or-agent-codes", "dev", "done"),
    ]
    assert all(run.report["n"] > 0 for run in runs)


@pytest.mark.django_db
def test_load_demo_twice_creates_nothing_the_second_time(settings, records):
    settings.DEBUG = True
    _load_demo()
    counts = (User.objects.count(), Project.objects.count(), Criterion.objects.count(), Trace.objects.count())
    labels, notes = Label.objects.count(), Note.objects.count()
    output = _load_demo()
    assert (User.objects.count(), Project.objects.count(), Criterion.objects.count(), Trace.objects.count()) == counts
    assert (Label.objects.count(), Note.objects.count()) == (labels, notes)
    assert f"0 traces created, {len(records)} already present. Log in" in output
    assert JudgeRun.objects.count() == 2


@pytest.mark.django_db
def test_load_demo_keeps_an_existing_demo_users_password(settings):
    settings.DEBUG = True
    User.objects.create_user(username="demo", password="changed-by-the-team")
    _load_demo()
    user = User.objects.get(username="demo")
    assert user.check_password("changed-by-the-team")
    assert Project.objects.get(slug="demo").expert == user


@pytest.mark.django_db
def test_every_page_in_the_navigation_opens_on_the_demo_project(settings, client):
    """A smoke test over the loaded demo: each page the top bar links to answers 200, as `make run` users see it."""
    settings.DEBUG = True
    _load_demo()
    client.force_login(User.objects.get(username="demo"))
    home = client.get("/projects/demo/")
    assert home.status_code == 200
    nav = home.content.decode().split('<nav class="project-nav">', 1)[1].split("</nav>", 1)[0]
    links = re.findall(r'href="([^"]+)"', nav)
    assert len(links) >= 10
    for link in links:
        response = client.get(link, follow=True)
        assert response.status_code == 200, link
    # And the pages one level down that the demo has data for.
    judge = Judge.objects.filter(project__slug="demo").first()
    for path in (
        f"/projects/demo/judges/{judge.pk}/",
        "/projects/demo/judges/promotions/",
        "/projects/demo/judges/compare/",
        "/projects/demo/monitoring/settings/",
        f"/projects/demo/traces/{Trace.objects.filter(project__slug='demo').first().external_id}/",
    ):
        assert client.get(path).status_code == 200, path
