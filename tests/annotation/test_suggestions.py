"""Suggested groupings: the run through a real worker, accepting/rejecting, LLM naming over loopback, the pages."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from annotation.models import (
    FailureMode,
    FailureModeChange,
    Note,
    NoteFailureMode,
    Project,
    Role,
    Suggestion,
    SuggestionRun,
)
from annotation.services import DomainError
from annotation.suggestions import (
    naming_problem,
    parse_naming_reply,
    run_notices,
    suggestion_accept,
    suggestion_reject,
    suggestion_run_enqueue,
    suggestion_run_execute,
)
from annotation.tasks import suggestion_run_task
from tests.factories import add_member, code_note, make_note, make_project, make_trace, make_user
from tests.llm_server import Reply, ScriptedLLMServer, openai_reasoning_model

THEMES = {
    "date": [
        "Gives the wrong date for the product launch",
        "wrong date: the launch was in 2019",
        "The date of the merger is wrong",
        "Wrong date for the outage",
        "gives a wrong date again",
    ],
    "refund": [
        "Promises a refund outside the refund policy",
        "refund policy ignored, offers a refund on gift cards",
        "Offers a refund although the policy forbids it",
        "Ignores the refund policy",
    ],
    "tool": [
        "Calls lookup_order with the wrong arguments",
        "lookup_order called with wrong arguments",
        "wrong arguments in the lookup_order tool call",
    ],
}


def write_notes(project: Project, author: User) -> dict[str, list[Note]]:
    notes: dict[str, list[Note]] = {}
    for theme, texts in THEMES.items():
        notes[theme] = [
            make_note(trace=make_trace(project=project, external_id=f"{theme}-{i}"), author=author, text=text)
            for i, text in enumerate(texts)
        ]
    return notes


def running_run(project: Project, user: User, **params: object) -> SuggestionRun:
    params = {"seed": 0, "distance_threshold": 0.85, "target_groups": None, "min_group_size": 2, **params}
    return SuggestionRun.objects.create(
        project=project, created_by=user, params=params, status="running", heartbeat_at=timezone.now()
    )


def member_sets(run: SuggestionRun) -> list[set[int]]:
    return [set(s.notes.values_list("pk", flat=True)) for s in run.suggestions.order_by("position")]


def ids(notes: list[Note]) -> set[int]:
    return {note.pk for note in notes}


def wait_until_finished(run: SuggestionRun, timeout: float = 60) -> SuggestionRun:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.is_finished:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run {run.pk} still {run.status} at {run.progress}% ({run.stage}) after {timeout} s")


# The run ------------------------------------------------------------------------------------------------------------


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_run_through_the_worker_ends_done_with_one_suggestion_per_theme(celery_worker, project, expert) -> None:
    notes = write_notes(project, expert)
    already = FailureMode.objects.create(project=project, name="Known")
    coded = make_note(trace=make_trace(project=project), author=expert, text="Wrong date for the merger")
    code_note(coded, already)

    run = suggestion_run_enqueue(project=project, user=expert, seed=3)
    assert run.status == SuggestionRun.Status.QUEUED
    run = wait_until_finished(run)

    assert run.status == SuggestionRun.Status.DONE, run.error
    assert (run.progress, run.stage, run.note_count) == (100, "done", 12)
    assert run.params["seed"] == 3 and run.params["notices"] == []
    assert member_sets(run) == [ids(notes["date"]), ids(notes["refund"]), ids(notes["tool"])]
    assert coded.pk not in set().union(*member_sets(run))
    first = run.suggestions.order_by("position").first()
    assert first.status == Suggestion.Status.PENDING and "date" in first.top_terms
    # Nothing reaches the codebook until a suggestion is accepted.
    assert list(FailureMode.objects.values_list("name", flat=True)) == ["Known"]
    assert NoteFailureMode.objects.count() == 1


@pytest.mark.django_db
def test_executing_a_run_again_replaces_its_suggestions_instead_of_duplicating(project, expert) -> None:
    write_notes(project, expert)
    run = running_run(project, expert)
    suggestion_run_execute(run=run)
    first = member_sets(run)
    # A worker that died after writing is taken over: the run is RUNNING again and executes from scratch.
    SuggestionRun.objects.filter(pk=run.pk).update(status=SuggestionRun.Status.RUNNING)
    run = suggestion_run_execute(run=run)
    assert run.status == SuggestionRun.Status.DONE
    assert run.suggestions.count() == 3
    assert member_sets(run) == first


@pytest.mark.django_db
def test_the_task_leaves_finished_runs_alone_and_takes_over_stale_ones(project, expert) -> None:
    write_notes(project, expert)
    done = running_run(project, expert)
    SuggestionRun.objects.filter(pk=done.pk).update(status=SuggestionRun.Status.DONE)
    assert suggestion_run_task(done.pk) == "not claimable (finished or deleted)"
    assert not done.suggestions.exists()

    stale = running_run(project, expert)
    SuggestionRun.objects.filter(pk=stale.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    assert suggestion_run_task(stale.pk) == "done"
    assert stale.suggestions.count() == 3


@pytest.mark.django_db
def test_a_run_with_too_few_notes_is_done_with_a_notice_and_no_suggestions(project, expert) -> None:
    make_note(trace=make_trace(project=project), author=expert, text="Only one note")
    run = suggestion_run_execute(run=running_run(project, expert))
    assert run.status == SuggestionRun.Status.DONE
    assert run_notices(run) == ["1 note to cluster: a group needs at least 2."]
    assert not run.suggestions.exists()


@pytest.mark.django_db
def test_a_run_that_breaks_ends_failed_with_a_clear_error(project, expert) -> None:
    write_notes(project, expert)
    run = running_run(project, expert, min_group_size=0)  # bypassing the start service's validation
    run = suggestion_run_execute(run=run)
    assert run.status == SuggestionRun.Status.FAILED
    assert run.error == "The run's parameters are invalid: minimum group size must be at least 2, got 0"
    assert run.finished_at is not None


@pytest.mark.django_db
def test_start_refuses_a_second_run_while_one_is_in_progress(project, expert) -> None:
    suggestion_run_enqueue(project=project, user=expert)
    with pytest.raises(DomainError, match="already being computed"):
        suggestion_run_enqueue(project=project, user=expert)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"distance_threshold": 1.5}, r"Distance threshold must be in \(0, 1\], got 1.5"),
        ({"target_groups": 0}, "Number of groups must be between 1 and 100, got 0"),
        ({"target_groups": 5, "distance_threshold": 0.5}, "either a distance threshold or a number of groups"),
        ({"min_group_size": 1}, "Minimum group size must be at least 2, got 1"),
    ],
)
def test_start_refuses_bad_parameters_naming_them(project, expert, params, message) -> None:
    with pytest.raises(DomainError, match=message):
        suggestion_run_enqueue(project=project, user=expert, **params)
    assert not SuggestionRun.objects.exists()


@pytest.mark.django_db
def test_start_refuses_llm_naming_when_no_endpoint_is_configured(project, expert, settings) -> None:
    settings.OPENAI_BASE_URL = settings.OPENAI_API_KEY = ""
    with pytest.raises(DomainError, match="needs OPENAI_BASE_URL"):
        suggestion_run_enqueue(project=project, user=expert, use_llm=True)


# Accept and reject --------------------------------------------------------------------------------------------------


@pytest.fixture
def suggested(project, expert) -> tuple[SuggestionRun, dict[str, list[Note]]]:
    notes = write_notes(project, expert)
    return suggestion_run_execute(run=running_run(project, expert)), notes


def suggestion_for(run: SuggestionRun, notes: list[Note]) -> Suggestion:
    return next(s for s in run.suggestions.all() if set(s.notes.values_list("pk", flat=True)) == ids(notes))


@pytest.mark.django_db
def test_accepting_as_a_new_mode_codes_the_kept_notes_under_the_edited_name(suggested, expert) -> None:
    run, notes = suggested
    suggestion = suggestion_for(run, notes["date"])
    kept = [n.pk for n in notes["date"][:4]]
    outcome = suggestion_accept(
        suggestion=suggestion, name="  Wrong   dates ", definition="States a wrong date.", note_ids=kept, actor=expert
    )
    mode = outcome.failure_mode
    assert (mode.name, mode.definition) == ("Wrong dates", "States a wrong date.")
    assert (outcome.assigned, outcome.skipped) == (4, 0)
    assert set(NoteFailureMode.objects.filter(failure_mode=mode).values_list("note_id", flat=True)) == set(kept)
    assert FailureModeChange.objects.get(failure_mode=mode).action == FailureModeChange.Action.CREATED
    suggestion.refresh_from_db()
    assert (suggestion.status, suggestion.failure_mode, suggestion.decided_by) == ("accepted", mode, expert)
    # The dropped note stays uncoded, ready for the next run.
    assert not NoteFailureMode.objects.filter(note=notes["date"][4]).exists()


@pytest.mark.django_db
def test_accepting_skips_notes_coded_meanwhile(suggested, project, expert) -> None:
    run, notes = suggested
    other = FailureMode.objects.create(project=project, name="Other")
    code_note(notes["refund"][0], other)
    outcome = suggestion_accept(
        suggestion=suggestion_for(run, notes["refund"]), name="Refund policy", definition="",
        note_ids=[n.pk for n in notes["refund"]], actor=expert,
    )  # fmt: skip
    assert (outcome.assigned, outcome.skipped) == (3, 1)
    assert list(notes["refund"][0].failure_modes.all()) == [other]


@pytest.mark.django_db
def test_accepting_into_an_existing_mode_adds_the_notes_to_it(suggested, project, expert) -> None:
    run, notes = suggested
    existing = FailureMode.objects.create(project=project, name="Tool misuse")
    outcome = suggestion_accept(
        suggestion=suggestion_for(run, notes["tool"]), name="ignored", definition="", failure_mode=existing,
        note_ids=[n.pk for n in notes["tool"]], actor=expert,
    )  # fmt: skip
    assert outcome.failure_mode == existing and outcome.assigned == 3
    assert FailureMode.objects.count() == 1


@pytest.mark.django_db
def test_accepting_is_refused_with_a_reason(suggested, project, expert) -> None:
    run, notes = suggested
    suggestion = suggestion_for(run, notes["tool"])
    tool_ids = [n.pk for n in notes["tool"]]
    FailureMode.objects.create(project=project, name="Taken")
    stranger_mode = FailureMode.objects.create(project=make_project(slug="other"), name="Elsewhere")
    attempts = [
        ({"name": "taken", "note_ids": tool_ids}, "A failure mode named “taken” already exists"),
        ({"name": "x", "note_ids": []}, "Keep at least one note"),
        ({"name": "x", "note_ids": [notes["date"][0].pk]}, f"Note {notes['date'][0].pk} is not part of suggestion"),
        ({"name": "x", "note_ids": tool_ids, "failure_mode": stranger_mode}, "belongs to another project"),
        ({"name": "   ", "note_ids": tool_ids}, "A failure mode needs a name"),
    ]
    for kwargs, message in attempts:
        with pytest.raises(DomainError, match=message):
            suggestion_accept(suggestion=suggestion, definition="", actor=expert, **kwargs)
    assert NoteFailureMode.objects.count() == 0
    suggestion_reject(suggestion=suggestion, actor=expert)
    with pytest.raises(DomainError, match="was already rejected"):
        suggestion_accept(suggestion=suggestion, name="Late", definition="", note_ids=tool_ids, actor=expert)


@pytest.mark.django_db
def test_accepting_when_every_note_was_coded_meanwhile_is_refused(suggested, project, expert) -> None:
    run, notes = suggested
    other = FailureMode.objects.create(project=project, name="Other")
    for note in notes["tool"]:
        code_note(note, other)
    with pytest.raises(DomainError, match="was coded meanwhile"):
        suggestion_accept(
            suggestion=suggestion_for(run, notes["tool"]), name="Tools", definition="",
            note_ids=[n.pk for n in notes["tool"]], actor=expert,
        )  # fmt: skip
    assert not FailureMode.objects.filter(name="Tools").exists()


@pytest.mark.django_db
def test_rejecting_marks_the_suggestion_and_touches_no_codebook(suggested, expert) -> None:
    run, notes = suggested
    suggestion = suggestion_reject(suggestion=suggestion_for(run, notes["date"]), actor=expert)
    assert (suggestion.status, suggestion.decided_by) == ("rejected", expert)
    assert not FailureMode.objects.exists()
    with pytest.raises(DomainError, match="was already rejected"):
        suggestion_reject(suggestion=suggestion, actor=expert)


# LLM naming over loopback -------------------------------------------------------------------------------------------


@pytest.fixture
def llm(settings) -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        settings.OPENAI_BASE_URL = server.base_url
        settings.OPENAI_API_KEY = "sk-test"
        settings.EVALSTUDIO_LLM_MODEL = "namer-1"
        yield server


@pytest.mark.django_db
def test_the_llm_names_groups_and_unusable_replies_keep_the_term_name_with_the_reason(
    llm, project, expert, settings
) -> None:
    notes = write_notes(project, expert)
    llm.reply_json({"name": "States wrong dates", "definition": "Gives a date that is wrong."})
    llm.reply("Sure! The name is: Refund stuff")
    llm.reply('```json\n{"name": "Bad tool arguments", "definition": "Calls a tool with wrong arguments."}\n```')
    run = suggestion_run_execute(run=running_run(project, expert, use_llm=True))

    assert run.status == SuggestionRun.Status.DONE, run.error
    date, refund, tool = run.suggestions.order_by("position")
    assert (date.name, date.definition) == ("States wrong dates", "Gives a date that is wrong.")
    assert (tool.name, tool.definition) == ("Bad tool arguments", "Calls a tool with wrong arguments.")
    assert refund.name == " / ".join(refund.top_terms[:3])[:1].upper() + " / ".join(refund.top_terms[:3])[1:]
    assert naming_problem(refund, run) == "the answer is not JSON: 'Sure! The name is: Refund stuff'"
    assert naming_problem(date, run) == ""
    assert run.params["llm_naming"]["named"] == 2
    assert "1 group kept the term-based name (see the group for why)." in run_notices(run)

    assert len(llm.chat_requests) == 3
    first = llm.chat_requests[0]
    assert first.json["model"] == "namer-1" and first.json["temperature"] == 0
    assert first.json["max_tokens"] == settings.EVALSTUDIO_LLM_MAX_TOKENS
    assert first.headers["authorization"] == "Bearer sk-test"
    prompt = first.messages[1]["content"]
    assert "<<<NOTES" in prompt and "NOTES>>>" in prompt
    assert all(f"- {n.text}" in prompt for n in notes["date"])


@pytest.mark.django_db
def test_a_slow_llm_times_out_and_the_term_name_stays(llm, project, expert, settings) -> None:
    settings.EVALSTUDIO_LLM_TIMEOUT_SECONDS = 0.3
    for text in ("Wrong date for the launch", "wrong date for the launch!"):
        make_note(trace=make_trace(project=project), author=expert, text=text)
    llm.respond_with(lambda _request: Reply(content='{"name": "Late", "definition": "Too late."}', delay=1.5))
    run = suggestion_run_execute(run=running_run(project, expert, use_llm=True))
    suggestion = run.suggestions.get()
    assert run.status == SuggestionRun.Status.DONE
    assert suggestion.name != "Late"
    assert naming_problem(suggestion, run) == "the LLM did not answer within 0.3 s"


@pytest.mark.django_db
def test_an_llm_http_error_keeps_the_term_name_and_says_which_status(llm, project, expert) -> None:
    for text in ("Wrong date for the launch", "wrong date for the launch!"):
        make_note(trace=make_trace(project=project), author=expert, text=text)
    llm.respond_with(lambda _request: Reply(status=401, content="bad key"))
    run = suggestion_run_execute(run=running_run(project, expert, use_llm=True))
    assert naming_problem(run.suggestions.get(), run) == "the LLM endpoint answered HTTP 401"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "the answer is empty"),
        ("[1, 2]", "the answer is JSON but not an object: '[1, 2]'"),
        ("<think>Which failure is this", "the answer is only reasoning: its <think> block never closed"),
        ('{"definition": "x"}', 'the reply had no "name" text'),
        ('{"name": "Ok", "definition": 3}', 'the reply had no "definition" text'),
        ('{"name": "' + "n" * 300 + '", "definition": "x"}', "the name was unusable: A failure mode name is limited"),
    ],
)
def test_naming_replies_are_validated(content, reason) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_naming_reply(content)


def test_a_valid_naming_reply_is_cleaned() -> None:
    assert parse_naming_reply(' {"name": " Wrong\\n dates ", "definition": "Says  a\\nwrong date."} ') == (
        "Wrong dates",
        "Says a wrong date.",
    )


NAMED = {"date": "States wrong dates", "refund": "Refunds against the policy", "tool": "Bad tool arguments"}


def name_by_theme(request) -> Reply:
    """Names each group after the theme its notes are about, whatever order the groups come in."""
    prompt = request.messages[1]["content"]
    theme = "date" if "date" in prompt else "refund" if "refund" in prompt else "tool"
    return Reply(content=json.dumps({"name": NAMED[theme], "definition": f"About {theme}."}))


@pytest.mark.django_db
def test_a_reasoning_model_that_refuses_max_tokens_and_temperature_names_every_group(
    llm, project, expert, settings
) -> None:
    write_notes(project, expert)
    llm.respond_with(openai_reasoning_model(name_by_theme))
    run = suggestion_run_execute(run=running_run(project, expert, use_llm=True))

    assert run.status == SuggestionRun.Status.DONE, run.error
    assert run.params["llm_naming"] == {"model": "namer-1", "named": 3, "problems": {}}
    assert sorted(run.suggestions.values_list("name", flat=True)) == sorted(NAMED.values())
    calls = [request.json for request in llm.chat_requests]
    # Two refusals teach it; the other groups are asked right the first time.
    assert len(calls) == 3 + 2
    assert calls[0]["max_tokens"] == settings.EVALSTUDIO_LLM_MAX_TOKENS and calls[0]["temperature"] == 0
    assert "max_tokens" not in calls[1] and calls[1]["max_completion_tokens"] == settings.EVALSTUDIO_LLM_MAX_TOKENS
    for call in calls[2:]:
        assert call["max_completion_tokens"] == settings.EVALSTUDIO_LLM_MAX_TOKENS
        assert "max_tokens" not in call and "temperature" not in call

    # Remembered for the model: the next run sends what it takes from its first call.
    before = len(llm.chat_requests)
    again = suggestion_run_execute(run=running_run(project, expert, use_llm=True))
    assert again.params["llm_naming"]["named"] == 3
    assert len(llm.chat_requests) - before == 3


@pytest.mark.django_db
def test_a_local_reasoning_models_think_block_is_stripped_before_the_name_is_read(llm, project, expert) -> None:
    write_notes(project, expert)

    def think_first(request) -> Reply:
        named = name_by_theme(request)
        return Reply(content=f"<think>\nThese notes all say something is wrong…\n</think>\n\n{named.content}")

    llm.respond_with(think_first)
    run = suggestion_run_execute(run=running_run(project, expert, use_llm=True))
    assert run.status == SuggestionRun.Status.DONE, run.error
    assert run.params["llm_naming"]["problems"] == {}
    assert sorted(run.suggestions.values_list("name", flat=True)) == sorted(NAMED.values())
    assert not run.suggestions.filter(definition__contains="think").exists()


@pytest.mark.django_db
def test_a_naming_answer_cut_while_the_model_reasons_keeps_the_term_name_and_says_why(
    llm, project, expert, settings
) -> None:
    settings.EVALSTUDIO_LLM_MAX_TOKENS = 300
    for text in ("Wrong date for the launch", "wrong date for the launch!"):
        make_note(trace=make_trace(project=project), author=expert, text=text)
    llm.respond_with(lambda _request: Reply(content="<think>\nFirst, the notes say", finish_reason="length"))
    run = suggestion_run_execute(run=running_run(project, expert, use_llm=True))
    assert run.status == SuggestionRun.Status.DONE, run.error
    assert naming_problem(run.suggestions.get(), run) == (
        "the answer was cut at max_tokens=300 while the model was still reasoning (inside <think>) — raise max_tokens"
    )
    assert len(llm.chat_requests) == 1 and llm.chat_requests[0].json["max_tokens"] == 300


# Pages --------------------------------------------------------------------------------------------------------------


def page_urls(project: Project, run: SuggestionRun, suggestion: Suggestion) -> dict[str, list[str]]:
    slug = project.slug
    return {
        "get": [reverse("suggestion_home", args=[slug]), reverse("suggestion_run_detail", args=[slug, run.pk])],
        "post": [
            reverse("suggestion_run_create", args=[slug]),
            reverse("suggestion_accept", args=[slug, suggestion.pk]),
            reverse("suggestion_reject", args=[slug, suggestion.pk]),
        ],
    }


@pytest.mark.django_db
def test_outsiders_get_404_on_every_suggestion_page_and_post(suggested, project, outsider_client) -> None:
    run, notes = suggested
    urls = page_urls(project, run, suggestion_for(run, notes["date"]))
    for url in urls["get"]:
        assert outsider_client.get(url).status_code == 404, url
    for url in urls["post"]:
        assert outsider_client.post(url, {"name": "x", "target": "new"}).status_code == 404, url
    assert Suggestion.objects.filter(status="pending").count() == 3


@pytest.mark.django_db
def test_viewers_read_suggestions_but_get_403_on_every_write(suggested, project) -> None:
    run, notes = suggested
    viewer = make_user("viewer")
    add_member(project, viewer, Role.VIEWER)
    client = Client()
    client.force_login(viewer)
    urls = page_urls(project, run, suggestion_for(run, notes["date"]))
    page = client.get(urls["get"][1])
    assert page.status_code == 200
    assert (
        "Accept as new mode" not in page.content.decode() and "Suggest groupings</button>" not in page.content.decode()
    )
    assert notes["date"][0].text in page.content.decode()
    for url in urls["post"]:
        assert client.post(url, {"name": "x", "target": "new"}).status_code == 403, url
    assert not SuggestionRun.objects.exclude(pk=run.pk).exists() and not FailureMode.objects.exists()


@pytest.mark.django_db
def test_posts_need_the_csrf_token(suggested, project, expert) -> None:
    run, notes = suggested
    client = Client(enforce_csrf_checks=True)
    client.force_login(expert)
    for url in page_urls(project, run, suggestion_for(run, notes["date"]))["post"]:
        assert client.post(url, {"name": "x"}).status_code == 403, url


@pytest.mark.django_db
def test_starting_a_run_redirects_to_its_page_which_polls_until_finished(project, expert, expert_client) -> None:
    response = expert_client.post(
        reverse("suggestion_run_create", args=[project.slug]),
        {"target_groups": "4", "distance_threshold": "", "seed": "7", "min_group_size": "3"},
    )
    run = SuggestionRun.objects.get()
    assert response.status_code == 302 and response.url == reverse("suggestion_run_detail", args=[project.slug, run.pk])
    assert run.params == {
        "seed": 7, "distance_threshold": None, "target_groups": 4, "min_group_size": 3, "use_llm": False,
    }  # fmt: skip
    polled = expert_client.get(response.url, headers={"HX-Request": "true"})
    assert polled.status_code == 200 and 'hx-trigger="every 1s"' in polled.content.decode()
    SuggestionRun.objects.filter(pk=run.pk).update(status="done", progress=100)
    final = expert_client.get(response.url, headers={"HX-Request": "true"})
    assert final.status_code == 286 and "hx-trigger" not in final.content.decode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"target_groups": "3", "distance_threshold": "0.5"}, "Give either a number of groups or a distance threshold"),
        ({"distance_threshold": "abc"}, "Enter a number."),
        ({"distance_threshold": "3"}, "Ensure this value is less than or equal to 1.0."),
        ({"target_groups": "500"}, "Ensure this value is less than or equal to 100."),
        ({"min_group_size": "1"}, "Ensure this value is greater than or equal to 2."),
        ({"use_llm": "on"}, "No LLM endpoint is configured on this server"),
    ],
)
def test_bad_start_parameters_are_shown_on_the_form(project, expert_client, settings, data, message) -> None:
    settings.OPENAI_BASE_URL = settings.OPENAI_API_KEY = ""
    response = expert_client.post(reverse("suggestion_run_create", args=[project.slug]), {"seed": "0", **data})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not SuggestionRun.objects.exists()


@pytest.mark.django_db
def test_a_second_run_while_one_is_queued_is_refused_on_the_form(project, expert, expert_client) -> None:
    suggestion_run_enqueue(project=project, user=expert)
    response = expert_client.post(reverse("suggestion_run_create", args=[project.slug]), {"seed": "0"})
    assert response.status_code == 400 and "already being computed" in response.content.decode()


@pytest.mark.django_db
def test_accepting_from_the_page_codes_the_kept_notes_under_the_edited_name(suggested, project, expert_client) -> None:
    run, notes = suggested
    suggestion = suggestion_for(run, notes["date"])
    dropped = notes["date"][1]
    response = expert_client.post(
        reverse("suggestion_accept", args=[project.slug, suggestion.pk]),
        {
            "target": "new", "name": "States wrong dates", "definition": "A date in the answer is wrong.",
            "shown": [n.pk for n in notes["date"]], "note": [n.pk for n in notes["date"] if n != dropped],
        },
        headers={"HX-Request": "true"},
    )  # fmt: skip
    body = response.content.decode()
    assert response.status_code == 200
    assert "Coded 4 notes to “States wrong dates”." in body and 'data-status="accepted"' in body
    assert body.count("(dropped: still uncoded)") == 1
    mode = FailureMode.objects.get(name="States wrong dates")
    assert set(mode.notes.values_list("pk", flat=True)) == ids(notes["date"]) - {dropped.pk}


@pytest.mark.django_db
def test_adding_to_an_existing_mode_and_rejecting_from_the_page(suggested, project, expert_client) -> None:
    run, notes = suggested
    existing = FailureMode.objects.create(project=project, name="Tool misuse")
    tool, refund = suggestion_for(run, notes["tool"]), suggestion_for(run, notes["refund"])
    response = expert_client.post(
        reverse("suggestion_accept", args=[project.slug, tool.pk]),
        {"target": "existing", "failure_mode": existing.pk, "name": "ignored"},
    )
    assert response.status_code == 302
    assert set(existing.notes.values_list("pk", flat=True)) == ids(notes["tool"])
    response = expert_client.post(reverse("suggestion_reject", args=[project.slug, refund.pk]), follow=True)
    assert "Rejected “" in response.content.decode()
    refund.refresh_from_db()
    assert refund.status == "rejected"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"target": "new", "name": "Taken"}, "A failure mode named “Taken” already exists in this project"),
        ({"target": "new", "name": ""}, "A failure mode needs a name"),
        ({"target": "existing", "failure_mode": ""}, "Choose the existing failure mode to add the notes to"),
        ({"target": "existing", "failure_mode": "999999"}, "There is no failure mode 999999 in this project"),
        ({"target": "sideways", "name": "x"}, "Unknown target &#x27;sideways&#x27;"),
        (
            {"target": "new", "name": "x", "shown": ["abc"]},
            "The shown notes list holds something that is not a note id",
        ),
    ],
)
def test_a_refused_accept_shows_the_reason_in_the_card(suggested, project, expert_client, data, message) -> None:
    run, notes = suggested
    FailureMode.objects.create(project=project, name="Taken")
    suggestion = suggestion_for(run, notes["date"])
    response = expert_client.post(
        reverse("suggestion_accept", args=[project.slug, suggestion.pk]), data, headers={"HX-Request": "true"}
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    suggestion.refresh_from_db()
    assert suggestion.status == "pending" and NoteFailureMode.objects.count() == 0


@pytest.mark.django_db
def test_note_text_and_llm_names_are_escaped(project, expert, expert_client) -> None:
    for text in ("<script>alert(1)</script> wrong date", "<script>alert(1)</script> wrong date!"):
        make_note(trace=make_trace(project=project), author=expert, text=text)
    run = suggestion_run_execute(run=running_run(project, expert))
    run.suggestions.update(name='<img src=x onerror="alert(2)">', definition="<b>bold</b>")
    body = expert_client.get(reverse("suggestion_run_detail", args=[project.slug, run.pk])).content.decode()
    assert "<script>alert(1)" not in body and "&lt;script&gt;alert(1)" in body
    assert "<img src=x" not in body and "&lt;img src=x" in body
    assert "<b>bold</b>" not in body


@pytest.mark.django_db
def test_the_run_page_takes_the_same_number_of_queries_however_many_groups_and_notes(
    project, expert, expert_client
) -> None:
    write_notes(project, expert)
    small = suggestion_run_execute(run=running_run(project, expert))
    assert small.suggestions.count() == 3
    for theme in range(12):
        for i in range(8):
            make_note(trace=make_trace(project=project), author=expert, text=f"zq{theme}x failure kind {theme} #{i}")
    SuggestionRun.objects.filter(pk=small.pk).update(status="done")
    big = suggestion_run_execute(run=running_run(project, expert, distance_threshold=0.6))
    assert big.suggestions.count() > small.suggestions.count()
    counts = []
    for run in (small, big):
        with CaptureQueriesContext(connection) as captured:
            assert expert_client.get(reverse("suggestion_run_detail", args=[project.slug, run.pk])).status_code == 200
        counts.append(len(captured))
    assert counts[0] == counts[1]


@pytest.mark.django_db
def test_the_failure_modes_page_links_to_suggestions(project, expert_client) -> None:
    body = expert_client.get(reverse("failure_mode_list", args=[project.slug])).content.decode()
    assert reverse("suggestion_home", args=[project.slug]) in body


@pytest.mark.django_db
def test_a_run_still_heartbeating_elsewhere_is_retried_later_not_run_twice(project, expert) -> None:
    from celery.exceptions import Retry

    write_notes(project, expert)
    busy = running_run(project, expert)
    with pytest.raises(Retry):
        suggestion_run_task(busy.pk)
    assert not busy.suggestions.exists()


@pytest.mark.django_db
def test_with_an_llm_configured_the_form_offers_naming_and_the_run_records_it(llm, project, expert_client) -> None:
    page = expert_client.get(reverse("suggestion_home", args=[project.slug])).content.decode()
    assert 'name="use_llm"' in page
    response = expert_client.post(reverse("suggestion_run_create", args=[project.slug]), {"use_llm": "on"})
    assert response.status_code == 302
    assert SuggestionRun.objects.get().params["use_llm"] is True


@pytest.mark.django_db
def test_an_unreachable_llm_endpoint_keeps_the_term_name_and_says_so(project, expert, settings) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY = f"http://127.0.0.1:{port}/v1", ""
    for text in ("Wrong date for the launch", "wrong date for the launch!"):
        make_note(trace=make_trace(project=project), author=expert, text=text)
    run = suggestion_run_execute(run=running_run(project, expert, use_llm=True))
    assert run.status == SuggestionRun.Status.DONE
    assert naming_problem(run.suggestions.get(), run) == "the LLM endpoint could not be reached"
