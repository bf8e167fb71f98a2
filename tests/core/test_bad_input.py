"""Bad input is a 400 (or a rejected record) naming the problem, never a 500: JSON nested too deep, NUL characters,
and user regexes that backtrack catastrophically (an error verdict within the time limit, never a hang or a pass)."""

from __future__ import annotations

import json
import time

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from annotation.models import Criterion, FailureMode, Note
from annotation.services import api_token_create
from core.json_input import JsonTooDeep, json_depth_check, json_loads
from core.user_regex import RegexTimeout, search
from judges.models import JudgeRun
from judges.providers import TraceInput, assertion
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.factories import make_criterion, make_label, make_note, make_trace

CATASTROPHIC = "(a|aa)+$"
EVIL_TEXT = "a" * 40 + "b"  # Python's `re` takes hours on this
TRACES_URL = "/api/v1/projects/acme/traces"


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def deep_text(depth: int) -> str:
    # Built as text: json.dumps itself recurses and could not write the deepest of these.
    return "[" * depth + "1" + "]" * depth


@pytest.fixture
def token(project) -> str:
    return api_token_create(project=project, name="ci")[1]


def post_api(client, url: str, body: str | bytes, token: str, content_type: str = "application/json"):
    return client.generic(
        "POST", url, data=body, content_type=content_type, headers={"Authorization": f"Bearer {token}"}
    )


# --- the depth limit itself ----------------------------------------------------------------------------------------


def test_the_depth_check_names_the_member_that_is_too_deep_and_allows_the_limit_itself():
    json_depth_check({"metadata": nested(63)}, limit=64)  # 64 levels with the object itself: allowed
    with pytest.raises(JsonTooDeep, match=r"^metadata: nested deeper than 64 levels$"):
        json_depth_check({"ok": 1, "metadata": nested(64)}, limit=64)
    with pytest.raises(JsonTooDeep, match=r"^candidates\[1\]: nested deeper than 3 levels$"):
        json_depth_check([[1], nested(3)], where="candidates", limit=3)


def test_text_too_deep_for_the_parser_is_too_deep_not_a_recursion_error():
    with pytest.raises(JsonTooDeep, match=r"^config: nested deeper than 64 levels$"):
        json_loads(deep_text(100_000), where="config")
    with pytest.raises(JsonTooDeep):
        json_loads(deep_text(65))
    assert json_loads(deep_text(64)) == nested(64)


def test_the_limit_is_a_setting(settings):
    settings.EVALSTUDIO_MAX_JSON_DEPTH = 3
    with pytest.raises(JsonTooDeep, match="nested deeper than 3 levels"):
        json_loads(deep_text(4))


# --- the traces API ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_too_deep_trace_in_a_json_body_is_rejected_by_index_naming_the_field_and_the_others_stored(
    client, project, token
):
    traces = [{"id": "ok", "input": "q", "output": "a"}, {"id": "deep", "input": "q", "metadata": {"x": nested(70)}}]
    response = post_api(client, TRACES_URL, json.dumps({"traces": traces}), token)
    assert response.status_code == 207
    assert response.json()["rejected"] == [
        {"index": 1, "id": "deep", "error": "metadata: nested deeper than 64 levels"}
    ]
    assert list(project.traces.values_list("external_id", flat=True)) == ["ok"]


@pytest.mark.django_db
def test_a_body_too_deep_for_the_parser_is_a_400_and_nothing_is_stored(client, project, token):
    body = '{"traces": [{"input": "q", "metadata": ' + deep_text(200_000) + "}]}"
    response = post_api(client, TRACES_URL, body, token)
    assert response.status_code == 400
    assert response.json() == {"detail": "The body is nested deeper than 64 levels"}
    assert not project.traces.exists()


@pytest.mark.django_db
def test_a_too_deep_ndjson_line_is_rejected_by_line_and_the_others_stored(client, project, token):
    lines = [
        json.dumps({"id": "ok", "input": "q"}),
        '{"id": "parser", "input": "q", "context": ' + deep_text(100_000) + "}",
        json.dumps({"id": "deep", "input": "q", "messages": [{"role": "user", "content": "x", "extra": nested(80)}]}),
    ]
    response = post_api(client, TRACES_URL, "\n".join(lines), token, content_type="application/x-ndjson")
    assert response.status_code == 207
    rejected = {r["index"]: r["error"] for r in response.json()["rejected"]}
    assert rejected == {
        1: "invalid JSON: nested deeper than 64 levels",
        2: "messages: nested deeper than 64 levels",
    }
    assert list(project.traces.values_list("external_id", flat=True)) == ["ok"]


# --- evalsuite, judge version configs, grader configs --------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("body", "error"),
    [
        ('{"candidates": [{"id": "g", "output": "x", "meta": ' + deep_text(70) + "}]}", "candidates: nested deeper"),
        ('{"candidates": ' + deep_text(100_000) + "}", "body: nested deeper than 64 levels"),
    ],
)
def test_a_too_deep_evalsuite_body_is_a_400_naming_where(client, project, token, body, error):
    response = post_api(client, "/api/v1/projects/acme/evalsuite", body, token)
    assert response.status_code == 400
    assert response.json()["detail"].startswith(error)


@pytest.fixture
def regex_judge(project, expert):
    criterion = make_criterion(project=project, name="no_apology")
    return judge_create(
        project=project,
        criterion=criterion,
        name="sorry-regex",
        kind="assertion",
        config={"check": "regex", "pattern": "sorry", "ignore_case": True, "must_match": False},
        user=expert,
    )


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [70, 20_000])  # the second beyond the parser (the form takes 100,000 characters)
def test_a_too_deep_judge_version_config_is_a_400_with_the_message_on_the_page(expert_client, regex_judge, depth):
    config = '{"check": "regex", "pattern": "x", "extra": ' + deep_text(depth) + "}"
    url = reverse("judge_version_create", args=["acme", regex_judge.pk])
    response = expert_client.post(url, {"config": config, "comment": ""})
    assert response.status_code == 400
    assert "nested deeper than 64 levels" in response.content.decode()
    assert regex_judge.versions.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [70, 100_000])
def test_a_too_deep_grader_config_is_a_400_naming_the_config(expert_client, project, depth):
    config = '{"check": "json_schema", "schema": {"properties": {"a": ' + deep_text(depth) + "}}}"
    response = expert_client.post(
        reverse("agents_grader_create", args=["acme"]),
        {"name": "deep", "target": "final_output", "config": config, "description": ""},
    )
    assert response.status_code == 400
    assert "nested deeper than 64 levels" in response.content.decode()


# --- NUL characters ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "where"),
    [
        ("/projects/acme/traces/a%00b/", "path"),
        ("/projects/acme/traces/?source=a%00b", "query parameter source"),
        ("/projects/acme/review/?source=%00", "query parameter source"),
        ("/projects/acme/failure-modes/?source=%00", "query parameter source"),
        ("/projects/acme/failure-modes/?x%00=1", "query parameter name"),
    ],
)
def test_a_nul_in_a_page_path_or_filter_is_a_400_naming_where(expert_client, project, url, where):
    make_trace(project=project, external_id="t-1")
    response = expert_client.get(url)
    assert response.status_code == 400
    assert response.content.decode() == f"{where}: contains a NUL character (\\u0000), which is not allowed"


@pytest.mark.django_db
def test_a_nul_in_an_api_filter_is_a_json_400(client, project, token):
    response = client.get(
        "/api/v1/projects/acme/failure-modes?source=%00", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 400
    assert response.json() == {
        "detail": "query parameter source: contains a NUL character (\\u0000), which is not allowed"
    }


@pytest.mark.django_db
def test_a_nul_in_a_failure_mode_name_or_definition_is_refused_and_nothing_is_stored(expert_client, project):
    url = reverse("failure_mode_new", args=["acme"])
    for data, what in [
        ({"name": "a\x00b"}, "A failure mode name"),
        ({"name": "ok", "definition": "d\x00"}, "definition"),
    ]:
        response = expert_client.post(url, data)
        assert response.status_code < 500
        shown = [str(m) for m in get_messages(response.wsgi_request)] + [response.content.decode()]
        assert any(what in text and "NUL character" in text for text in shown), shown
    assert not FailureMode.objects.exists()
    mode = FailureMode.objects.create(project=project, name="fm")
    response = expert_client.post(reverse("failure_mode_rename", args=["acme", mode.pk]), {"name": "x\x00"})
    assert response.status_code < 500
    mode.refresh_from_db()
    assert mode.name == "fm"


@pytest.mark.django_db
def test_a_nul_in_note_text_is_refused(expert_client, project, expert):
    trace = make_trace(project=project, external_id="t-1")
    response = expert_client.post(reverse("note_add", args=["acme", trace.pk]), {"text": "bad\x00note"})
    assert response.status_code < 500
    assert not Note.objects.exists()
    note = make_note(trace=trace, author=expert, text="fine")
    response = expert_client.post(reverse("note_edit", args=["acme", note.pk]), {"text": "bad\x00"})
    assert response.status_code < 500
    note.refresh_from_db()
    assert note.text == "fine"


@pytest.mark.django_db
def test_a_nul_in_a_criterion_name_is_a_form_error(expert_client, project):
    response = expert_client.post(reverse("criterion_new", args=["acme"]), {"name": "a\x00b", "definition": "d"})
    assert response.status_code in (200, 400)
    assert "Null characters are not allowed" in response.content.decode()
    assert not Criterion.objects.exists()


@pytest.mark.django_db
def test_a_nul_in_a_trace_field_rejects_that_trace_naming_the_field(client, project, token):
    traces = [{"id": "n", "input": "a\x00b"}, {"id": "m", "input": "q", "metadata": {"k": "v\x00"}}]
    response = post_api(client, TRACES_URL, json.dumps({"traces": traces}), token)
    assert response.status_code == 207
    errors = [r["error"] for r in response.json()["rejected"]]
    assert errors[0].startswith("input: contains a NUL character")
    assert errors[1].startswith("metadata")
    assert not project.traces.exists()


# --- user regexes with a time limit --------------------------------------------------------------------------------


def test_a_catastrophic_pattern_stops_within_the_limit():
    # This thread's CPU time, not the wall clock: the match runs here, and without the limit it would spin for hours;
    # other processes on a busy machine stretch the wall clock but add nothing to it.
    started = time.thread_time()
    with pytest.raises(RegexTimeout, match=r"took longer than 0.05 s"):
        search(CATASTROPHIC, EVIL_TEXT, seconds=0.05)
    assert time.thread_time() - started < 1.0
    assert search("sorry", "I am SORRY", ignore_case=True)


def test_an_assertion_regex_that_backtracks_is_an_error_for_that_trace_not_a_pass_or_a_hang(settings):
    settings.EVALSTUDIO_REGEX_TIMEOUT_MS = 50
    config = assertion.validate_config({"check": "regex", "pattern": CATASTROPHIC, "must_match": False})
    started = time.thread_time()  # CPU time of this thread, where the judge runs the match
    outcome = assertion.judge(config, TraceInput(external_id="t", output=EVIL_TEXT))
    assert time.thread_time() - started < 1.0
    assert outcome.verdict == ""
    assert outcome.error == f"output: the regular expression /{CATASTROPHIC}/ took longer than 0.05 s and was stopped"
    assert assertion.judge(config, TraceInput(external_id="t", output="aaa")).verdict == "fail"


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": CATASTROPHIC},
        {"type": "object", "patternProperties": {CATASTROPHIC: {"type": "integer"}}},
    ],
    ids=["pattern", "patternProperties"],
)
def test_a_json_schema_pattern_that_backtracks_is_an_error_for_that_trace(settings, schema):
    settings.EVALSTUDIO_REGEX_TIMEOUT_MS = 50
    config = assertion.validate_config({"check": "json_schema", "schema": schema})
    value = EVIL_TEXT if schema["type"] == "string" else {EVIL_TEXT: 1}
    started = time.thread_time()  # CPU time of this thread, where the judge runs the match
    outcome = assertion.judge(config, TraceInput(external_id="t", output=json.dumps(value)))
    assert time.thread_time() - started < 1.0
    assert outcome.verdict == ""
    assert outcome.error.startswith("schema: the regular expression /") and "took longer than 0.05 s" in outcome.error
    plain = "bbb" if schema["type"] == "string" else {"aaa": "x"}
    assert assertion.judge(config, TraceInput(external_id="t", output=json.dumps(plain))).verdict == "fail"


@pytest.fixture
def catastrophic_judge(project, expert):
    criterion = make_criterion(project=project, name="no_apology")
    for i, output in enumerate(["Sorry.", "Fine.", EVIL_TEXT]):
        trace = make_trace(project=project, external_id=f"t-{i}", output=output)
        make_label(trace=trace, criterion=criterion, verdict="fail" if i == 0 else "pass")
    return judge_create(
        project=project,
        criterion=criterion,
        name="evil",
        kind="assertion",
        config={"check": "regex", "pattern": "sorry|" + CATASTROPHIC, "ignore_case": True, "must_match": False},
        user=expert,
    )


@pytest.mark.django_db
def test_a_run_in_the_request_ends_with_an_error_judgment_for_the_backtracking_trace(catastrophic_judge, settings):
    settings.EVALSTUDIO_REGEX_TIMEOUT_MS = 50
    started = time.thread_time()  # an assertion judge runs in this thread: its CPU time, whatever the machine's load
    run = judge_run_execute(run=judge_run_create(version=catastrophic_judge.latest_version(), split="all"))
    assert time.thread_time() - started < 5
    verdicts = {j.trace.external_id: (j.verdict, j.error) for j in run.judgments.select_related("trace")}
    assert verdicts["t-0"][0] == "fail" and verdicts["t-1"][0] == "pass"
    assert verdicts["t-2"][0] in ("", None) and "took longer than 0.05 s" in verdicts["t-2"][1]


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_on_the_worker_the_backtracking_trace_is_an_error_and_the_run_finishes(
    celery_worker, catastrophic_judge, expert_client, settings
):
    settings.EVALSTUDIO_REGEX_TIMEOUT_MS = 50
    response = expert_client.post(
        reverse("judge_run_create", args=["acme", catastrophic_judge.pk]), {"version": "1", "split": "all"}
    )
    assert response.status_code == 302
    run = JudgeRun.objects.get()
    deadline = time.monotonic() + 30
    while not run.is_finished and time.monotonic() < deadline:
        time.sleep(0.1)
        run.refresh_from_db()
    assert run.status == JudgeRun.Status.DONE, run.error
    errors = {j.trace.external_id: j.error for j in run.judgments.select_related("trace") if j.error}
    assert list(errors) == ["t-2"] and "took longer than 0.05 s" in errors["t-2"]
