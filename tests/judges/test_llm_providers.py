"""The provider layer with the models people run (issue 14 §6): each server behaviour imitated on the loopback server
(tests/llm_server.py) as the real server answers it (status code and error body), the real openai client talking
to it."""

from __future__ import annotations

import json
import re

import pytest
from django.urls import reverse

from core import llm_compat
from core.llm_calls import MalformedAnswer
from core.llm_client import llm_client, model_context
from judges.models import Judgment, LLMResponse
from judges.providers.llm import parse_answer, validate_config
from judges.providers.pairwise import ask_preference, parse_preference
from judges.selectors import labelled_trace_ids
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.factories import make_criterion, make_label, make_trace
from tests.llm_server import RecordedRequest, Reply, ScriptedLLMServer, openai_reasoning_model

GOOD = json.dumps({"reasoning": "Plain and correct.", "verdict": "pass"})

SCHEMA_REFUSED = {
    "message": "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.",
    "type": "invalid_request_error",
    "param": "response_format",
    "code": None,
}


# Answers like OpenAI's reasoning models: 400 for max_tokens, then for a temperature other than 1.
reasoning_model = openai_reasoning_model(lambda _r: Reply(content=GOOD))


@pytest.fixture
def criterion(project):
    criterion = make_criterion(project=project, name="plain", definition="Fail when the reply rambles.")
    for i in range(24):
        trace = make_trace(project=project, external_id=f"t-{i}", output=f"Answer {i}.")
        make_label(trace=trace, criterion=criterion, verdict="pass", critique="")
    return criterion


def run_dev(project, criterion, config):
    judge = judge_create(project=project, criterion=criterion, name="judge", kind="llm", config=config)
    return judge_run_execute(run=judge_run_create(version=judge.latest_version(), split="dev"))


def dev_count(criterion) -> int:
    return len(labelled_trace_ids(criterion=criterion, split="dev"))


# --- 1. parameters a reasoning model refuses ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_reasoning_model_is_asked_again_without_what_it_refuses_and_remembered(
    project, criterion, llm_server, settings
):
    settings.EVALSTUDIO_JUDGE_CONCURRENCY = 1
    llm_server.respond_with(reasoning_model)
    run = run_dev(project, criterion, {"few_shot": 0, "model": "o-test", "max_tokens": 900})
    n = dev_count(criterion)
    assert run.report["errors"] == 0 and run.report["n"] == n
    calls = llm_server.chat_requests
    # Two refusals teach it; every later call goes right the first time.
    assert len(calls) == n + 2
    assert "max_tokens" in calls[0].json and calls[0].json["temperature"] == 0
    assert "max_tokens" not in calls[1].json and calls[1].json["max_completion_tokens"] == 900
    assert calls[1].json["temperature"] == 0
    for call in calls[2:]:
        assert call.json["max_completion_tokens"] == 900
        assert "max_tokens" not in call.json and "temperature" not in call.json
    assert not Judgment.objects.filter(run=run).exclude(error="").exists()


@pytest.mark.django_db
def test_what_one_process_learned_is_shared_with_the_others_through_the_cache(project, criterion, llm_server):
    llm_server.respond_with(reasoning_model)
    run_dev(project, criterion, {"few_shot": 0, "model": "o-test"})
    llm_compat.MEMO.clear()  # another process: nothing in memory, the shared cache only
    before = len(llm_server.chat_requests)
    other = judge_create(project=project, criterion=criterion, name="again", kind="llm",
                         config={"few_shot": 0, "model": "o-test", "max_tokens": 700})  # fmt: skip
    run = judge_run_execute(run=judge_run_create(version=other.latest_version(), split="dev"))
    later = llm_server.chat_requests[before:]
    assert run.report["errors"] == 0 and len(later) == dev_count(criterion)
    assert all(c.json.get("max_completion_tokens") == 700 and "temperature" not in c.json for c in later)


@pytest.mark.django_db
def test_other_400s_are_errors_not_adaptations(project, criterion, llm_server):
    llm_server.respond_with(
        lambda _r: Reply(status=400, error={"message": "model 'nope' not found", "type": "invalid_request_error"})
    )
    run = run_dev(project, criterion, {"few_shot": 0, "model": "nope"})
    assert run.report["errors"] == dev_count(criterion)
    assert len(llm_server.chat_requests) == dev_count(criterion)  # asked once each, never adapted
    judgment = Judgment.objects.filter(run=run).first()
    assert judgment.verdict == "" and judgment.error.startswith("BadRequestError") and "not found" in judgment.error


# --- 2. reasoning blocks before the answer -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "answer",
    [
        f"<think>\nThe user wants… it is plain.\n</think>\n\n{GOOD}",
        f"<thinking>Weighing it.</thinking>{GOOD}",
        f"<THINK>a</THINK>\n```json\n{GOOD}\n```",
        f"Okay, the template opened the block, so only its end shows.\n</think>\n{GOOD}",
        f"<think>first</think><think>second</think>{GOOD}",
    ],
)
def test_reasoning_blocks_are_stripped_before_the_strict_parse(answer):
    assert parse_answer(answer) == ("pass", "Plain and correct.")
    assert parse_preference(answer.replace('"verdict": "pass"', '"preference": "B"'))[0] == "B"


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("<think>Let me weigh this carefully and", "the answer is only reasoning: its <think> block never closed"),
        ("<think>done</think>", "the answer is only a reasoning block"),
        (f"{GOOD} <think>trailing", ""),  # text before an unclosed block is the answer
        ("<think>ok</think> PASS", "the answer is not JSON"),
    ],
)
def test_what_is_left_after_the_reasoning_is_still_parsed_strictly(answer, message):
    if not message:
        assert parse_answer(answer)[0] == "pass"
        return
    with pytest.raises(MalformedAnswer, match=re.escape(message)):
        parse_answer(answer)


@pytest.mark.django_db
def test_a_local_reasoning_models_answers_are_judged_and_cached(project, criterion, llm_server):
    llm_server.respond_with(lambda _r: Reply(content=f"<think>\nHmm, plain enough.\n</think>\n\n{GOOD}"))
    run = run_dev(project, criterion, {"few_shot": 0, "model": "qwen3:8b"})
    assert run.report["errors"] == 0 and run.report["n"] == dev_count(criterion)
    judgment = Judgment.objects.filter(run=run).first()
    assert judgment.reasoning == "Plain and correct." and judgment.raw_output.startswith("<think>")
    assert LLMResponse.objects.count() == dev_count(criterion)


@pytest.mark.django_db
def test_an_answer_cut_by_the_token_limit_is_reported_as_such_and_not_asked_again(project, criterion, llm_server):
    llm_server.respond_with(
        lambda _r: Reply(content="<think>\nFirst, the criterion says", finish_reason="length",
                         usage={"prompt_tokens": 60, "completion_tokens": 800})
    )  # fmt: skip
    run = run_dev(project, criterion, {"few_shot": 0, "model": "deepseek-r1:8b", "attempts": 3})
    assert run.report["errors"] == dev_count(criterion)
    assert len(llm_server.chat_requests) == dev_count(criterion)  # the same limit would cut it again
    judgment = Judgment.objects.filter(run=run).first()
    assert judgment.error == (
        "the answer was cut at max_tokens=800 while the model was still reasoning (inside <think>) — raise max_tokens"
    )
    assert "malformed" not in judgment.error and judgment.completion_tokens == 800
    assert not LLMResponse.objects.exists()


@pytest.mark.django_db
def test_a_cut_json_answer_names_the_limit_too(project, criterion, llm_server):
    llm_server.respond_with(lambda _r: Reply(content='{"reasoning": "It is pla', finish_reason="length"))
    run = run_dev(project, criterion, {"few_shot": 0, "model": "m", "max_tokens": 60})
    error = Judgment.objects.filter(run=run).first().error
    assert error == "the answer was cut at max_tokens=60 — raise max_tokens"


# --- 3. opt-in JSON-schema output --------------------------------------------------------------------------------


def test_response_format_accepts_only_json_schema():
    assert validate_config({"response_format": "json_schema"})["response_format"] == "json_schema"
    with pytest.raises(ValueError, match=re.escape('response_format: expected "json_schema"')):
        validate_config({"response_format": "json"})


@pytest.mark.django_db
def test_json_schema_output_sends_the_verdicts_strict_schema(project, criterion, llm_server):
    llm_server.respond_with(lambda _r: Reply(content=GOOD))
    run = run_dev(project, criterion, {"few_shot": 0, "model": "m", "response_format": "json_schema"})
    assert run.report["errors"] == 0
    sent = llm_server.chat_requests[0].json["response_format"]
    assert sent == {
        "type": "json_schema",
        "json_schema": {
            "name": "verdict",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {
                    "reasoning": {"type": "string"},
                    "verdict": {"type": "string", "enum": ["pass", "fail"]},
                },
                "required": ["reasoning", "verdict"],
                "additionalProperties": False,
            },
        },
    }
    # Without the setting nothing is sent: the server's default output.
    other = judge_create(project=project, criterion=criterion, name="plain", kind="llm", config={"few_shot": 0})
    judge_run_execute(run=judge_run_create(version=other.latest_version(), split="dev"))
    assert "response_format" not in llm_server.chat_requests[-1].json


@pytest.mark.django_db
def test_a_server_refusing_json_schema_gets_an_error_naming_the_setting(project, criterion, llm_server):
    llm_server.respond_with(lambda _r: Reply(status=400, error=SCHEMA_REFUSED))
    run = run_dev(project, criterion, {"few_shot": 0, "model": "m", "response_format": "json_schema"})
    assert run.report["errors"] == dev_count(criterion)
    error = Judgment.objects.filter(run=run).first().error
    assert error.startswith("response_format: the server refused the JSON-schema response format (BadRequestError")
    assert 'remove "response_format" from the judge\'s config' in error


# --- 4. prompts longer than the context --------------------------------------------------------------------------


def test_tokens_are_estimated_as_characters_over_four_and_compared_with_the_context():
    messages = [{"role": "system", "content": "x" * 4000}, {"role": "user", "content": "y" * 400}]
    assert llm_compat.estimate_tokens(messages) == 1100 + 2 * 4
    context = llm_compat.Context(1024, "Ollama's num_ctx for m")
    warning = llm_compat.over_context_warning(1108, 800, context)
    assert warning.startswith("the prompt is about 1,108 tokens (estimated as characters / 4)")
    assert "context of 1,024 tokens (Ollama's num_ctx for m)" in warning
    assert llm_compat.over_context_warning(100, 800, context) == ""
    assert llm_compat.over_context_warning(5000, 800, None) == ""


def test_the_servers_context_is_read_from_vllm_and_ollama():
    assert llm_compat.context_from_models({"data": [{"id": "m", "max_model_len": 8192}]}, "m").tokens == 8192
    assert llm_compat.context_from_models({"data": [{"id": "m"}]}, "m") is None
    shown = {"parameters": "temperature 0.6\nnum_ctx 2048", "model_info": {"qwen3.context_length": 40960}}
    assert llm_compat.context_from_ollama_show(shown, "q") == llm_compat.Context(2048, "Ollama's num_ctx for q")
    assert llm_compat.context_from_ollama_show({"model_info": {"qwen3.context_length": 40960}}, "q").tokens == 40960


@pytest.mark.django_db
def test_the_context_comes_from_the_setting_then_vllm_then_ollama(settings):
    with ScriptedLLMServer(model_ids=("big",), max_model_len=32768) as vllm:
        settings.OPENAI_BASE_URL = vllm.base_url
        context = model_context(llm_client(), {"model": "big"})
        assert context == llm_compat.Context(32768, "the server's /v1/models max_model_len for big")
        assert model_context(llm_client(), {"model": "big", "context_tokens": 4000}).tokens == 4000
        asked = len(vllm.requests)
        model_context(llm_client(), {"model": "big"})
        assert len(vllm.requests) == asked  # remembered, not asked again
    with ScriptedLLMServer(ollama_show={"parameters": "num_ctx 2048"}) as ollama:
        settings.OPENAI_BASE_URL = ollama.base_url
        assert model_context(llm_client(), {"model": "qwen3:8b"}).tokens == 2048
        assert [r.path for r in ollama.requests] == ["/v1/models", "/api/show"]
    with ScriptedLLMServer() as plain:
        settings.OPENAI_BASE_URL = plain.base_url
        assert model_context(llm_client(), {"model": "gpt"}) is None


def ollama_cutting_to(num_ctx: int):
    """Ollama's OpenAI endpoint: a prompt longer than num_ctx is cut silently, and usage reports what was kept."""

    def respond(request: RecordedRequest) -> Reply:
        sent = llm_compat.estimate_tokens(request.messages)
        return Reply(content=GOOD, usage={"prompt_tokens": min(sent, num_ctx), "completion_tokens": 20})

    return respond


@pytest.mark.django_db
def test_a_prompt_the_server_cut_is_an_error_naming_the_context_not_a_verdict(project, llm_server):
    llm_server.ollama_show = {"parameters": "num_ctx 2048"}
    llm_server.respond_with(ollama_cutting_to(2048))
    criterion = make_criterion(project=project, name="long", definition="Fail when the reply rambles.")
    for i in range(24):
        # Half the traces fit; half are about 3,000 tokens (an output cut to 12,000 characters in the prompt).
        size = 20_000 if i % 2 else 200
        trace = make_trace(project=project, external_id=f"t-{i}", output="word " * (size // 5))
        make_label(trace=trace, criterion=criterion, verdict="pass", critique="")
    run = run_dev(project, criterion, {"few_shot": 0, "model": "qwen3:8b"})
    errors = list(Judgment.objects.filter(run=run).exclude(error=""))
    judged = Judgment.objects.filter(run=run, error="").count()
    assert errors and judged and run.report["errors"] == len(errors)
    error = errors[0].error
    assert error.startswith("the server read only 2,048 of the prompt's ~")
    assert "(estimated as characters / 4)" in error and "(the model's context: 2,048 tokens, Ollama's num_ctx" in error
    assert errors[0].verdict == "" and LLMResponse.objects.count() == judged  # a cut prompt's answer is not kept


# --- the same call loop in pairwise comparison ---------------------------------------------------------------------


@pytest.mark.django_db
def test_pairwise_calls_adapt_and_strip_reasoning_too(llm_server):
    def respond(request: RecordedRequest) -> Reply:
        refused = reasoning_model(request)
        if refused.status != 200:
            return refused
        return Reply(content='<think>A is plainer.</think>{"reasoning": "A is plainer.", "preference": "A"}')

    llm_server.respond_with(respond)
    config = validate_config({"model": "o-test", "response_format": "json_schema"})
    messages = [{"role": "user", "content": "Which?"}]
    answer = ask_preference(client=llm_client(), model="o-test", messages=messages, config=config, cache=None)
    assert (answer.preference, answer.error) == ("A", "")
    last = llm_server.chat_requests[-1].json
    assert "temperature" not in last and last["max_completion_tokens"] == 800
    assert last["response_format"]["json_schema"]["name"] == "preference"
    assert last["response_format"]["json_schema"]["schema"]["properties"]["preference"]["enum"] == ["A", "B", "tie"]


def test_a_cut_is_read_from_a_count_at_the_context_never_from_a_cache_hits_small_count():
    context = llm_compat.Context(2048, "Ollama's num_ctx for m")
    assert "2,048 tokens, Ollama's num_ctx for m" in llm_compat.truncation_problem(3000, 2048, context)
    assert llm_compat.truncation_problem(2200, 1990, context) == ""  # over by the estimate only: it fitted
    # The context unknown: far below the estimate and a context size (Ollama's default num_ctx cut it).
    assert llm_compat.truncation_problem(9000, 4096, None).startswith("the server read only 4,096 of the prompt's")
    assert llm_compat.truncation_problem(9000, 4000, None).startswith("the server read only 4,000")
    assert llm_compat.truncation_problem(3000, 2048, None) == ""  # within what the estimate may be off by
    # Ollama versions that count only the tokens missing from their prompt cache report little, or 0: not a cut.
    assert llm_compat.truncation_problem(9000, 1500, None) == ""
    assert llm_compat.truncation_problem(9000, 0, context) == ""
    assert llm_compat.truncation_problem(100, 10, None) == ""  # too small to say
    assert llm_compat.truncation_problem(3000, None, context) == ""  # the server reports no usage


@pytest.mark.django_db
def test_a_verdict_on_a_prompt_over_the_context_stands_with_a_warning_on_the_run_page(
    project, llm_server, expert_client
):
    llm_server.max_model_len = 1024  # vLLM's /v1/models
    # A server that reads the whole prompt (its count matches the estimate): nothing shows a cut, so verdicts stand.
    llm_server.respond_with(
        lambda r: Reply(
            content=GOOD, usage={"prompt_tokens": llm_compat.estimate_tokens(r.messages), "completion_tokens": 20}
        )
    )
    criterion = make_criterion(project=project, name="long", definition="Fail when the reply rambles.")
    for i in range(24):
        trace = make_trace(project=project, external_id=f"t-{i}", output="word " * (800 if i % 2 else 10))
        make_label(trace=trace, criterion=criterion, verdict="pass", critique="")
    run = run_dev(project, criterion, {"few_shot": 0, "model": "test-model", "max_tokens": 200})
    warned = Judgment.objects.filter(run=run).exclude(warning="")
    assert run.report["errors"] == 0 and warned.exists() and warned.count() < run.report["n"]
    assert run.report["warnings"] == warned.count()
    assert (
        "more than the model's context of 1,024 tokens (the server's /v1/models max_model_len for test-model)"
        in (run.report["warning"])
    )
    assert all(j.verdict == "pass" for j in warned)
    html = expert_client.get(reverse("judge_run_detail", args=["acme", run.pk])).content.decode()
    assert f'data-warnings="{warned.count()}"' in html and "estimated longer than the model's context" in html


@pytest.mark.django_db
def test_the_prompt_preview_shows_the_estimate_and_warns_over_the_configured_context(project, criterion, expert_client):
    judge = judge_create(project=project, criterion=criterion, name="small", kind="llm",
                         config={"few_shot": 0, "model": "m", "context_tokens": 300, "max_tokens": 200})  # fmt: skip
    trace = make_trace(project=project, external_id="big", output="<b>x</b> " * 200)
    url = reverse("judge_version_preview", args=["acme", judge.pk, 1]) + "?trace=big"
    html = expert_client.get(url).content.decode()
    assert 'id="prompt-size"' in html and "estimated as characters / 4" in html
    assert "against the model's context of 300 tokens (the judge&#x27;s context_tokens setting)" in html
    assert 'id="context-warning"' in html and "the server may cut the prompt" in html
    assert "<b>x</b>" not in html  # the trace is shown escaped
    judge_create(project=project, criterion=criterion, name="roomy", kind="llm", config={"few_shot": 0, "model": "m"})
    roomy = expert_client.get(url.replace(f"/{judge.pk}/", f"/{judge.pk + 1}/")).content.decode()
    assert "the model's context is not known yet" in roomy and 'id="context-warning"' not in roomy
    assert trace.external_id == "big"


@pytest.mark.django_db
def test_the_bias_battery_asks_a_reasoning_model_through_the_same_adapting_calls(
    project, criterion, llm_server, settings
):
    from judges.bias import bias_run_create, bias_run_execute

    settings.EVALSTUDIO_JUDGE_CONCURRENCY = 1
    llm_server.respond_with(
        lambda r: reasoning_model(r) if reasoning_model(r).status != 200 else Reply(content=f"<think>ok</think>{GOOD}")
    )
    judge = judge_create(project=project, criterion=criterion, name="o", kind="llm",
                         config={"few_shot": 0, "model": "o-test"})  # fmt: skip
    run = bias_run_execute(run=bias_run_create(version=judge.latest_version()))
    assert run.status == "done", run.error
    biases = run.report["biases"]
    assert biases and all(b.get("errors", 0) == 0 for b in biases.values())
    calls = llm_server.chat_requests
    assert len(calls) == run.report["prompts"] + 2  # two refusals, then every call right the first time
    assert all("max_tokens" not in c.json and "temperature" not in c.json for c in calls[2:])


class _Store:
    def __init__(self) -> None:
        self.values: dict[str, object] = {}
        self.reads = 0

    def get(self, key: str) -> object:
        self.reads += 1
        return self.values.get(key)

    def set(self, key: str, value: object) -> None:
        self.values[key] = value


def test_the_memo_reads_the_shared_store_once_for_a_model_that_needs_nothing_and_learns_from_others():
    shared, memo = _Store(), llm_compat.AdaptationMemo(recheck_seconds=3600)
    for _ in range(5):
        assert memo.get("http://h/v1", "chat", shared).is_default
    assert shared.reads == 1  # the miss is remembered, not read per call
    other = llm_compat.AdaptationMemo()
    learned = llm_compat.Adaptation(max_tokens_param="max_completion_tokens", send_temperature=False)
    other.put("http://h/v1", "o-test", learned, shared)
    assert memo.get("http://h/v1", "o-test", shared) == learned  # another process's lesson, through the store
    assert learned.describe() == (
        "the token limit sent as max_completion_tokens; no temperature (the model takes only its default)"
    )
    sent = llm_compat.request_params({"temperature": 0, "max_tokens": 900, "response_format": {}}, learned)
    assert sent == {"max_completion_tokens": 900, "response_format": {}}


def test_openais_own_api_is_not_asked_for_a_context_it_does_not_report():
    import openai

    from core.llm_compat import probe_context

    # No request is made: this test would otherwise need the network (and OpenAI has no /api/show).
    client = openai.OpenAI(base_url="https://api.openai.com/v1", api_key="sk-test", max_retries=0, timeout=0.01)
    assert probe_context(client, "gpt-4.1-mini") is None
