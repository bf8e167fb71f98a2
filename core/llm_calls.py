"""Asking an LLM over any OpenAI-compatible endpoint, the same way for every caller: LLM judges (pointwise,
pairwise, the bias battery) and the naming of suggested groupings of notes. Django-free.

`complete` makes one call with the parameters adapted to what the model takes (core.llm_compat: a refusal of
`max_tokens` or `temperature` is learned, remembered per endpoint and model, and the call made again);
`ask_parsed` reads a stored answer first, parses the answer with the caller's `parse` (after `<think>` blocks are
stripped, `answer_object`), asks again when it is malformed, and turns an answer cut by the token limit or given on
a prompt the server cut into an error saying so. What to ask and how to read the answer stay with the caller.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from core import llm_compat


class MalformedAnswer(ValueError):
    """The model's answer is not the JSON object asked for."""


_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def answer_object(text: str | None) -> dict[str, Any]:
    """The JSON object of an answer, after the model's reasoning blocks (`<think>…</think>`, llm_compat) and a code
    fence around it are removed; the parse itself is strict. Raises MalformedAnswer saying what is wrong."""
    if not text or not text.strip():
        raise MalformedAnswer("the answer is empty")
    stripped = llm_compat.strip_reasoning(text)
    body = stripped.text
    if not body:
        if stripped.unclosed:
            raise MalformedAnswer("the answer is only reasoning: its <think> block never closed")
        raise MalformedAnswer("the answer is only a reasoning block, with nothing after it")
    fenced = _FENCE.match(body)
    if fenced:  # a common, harmless deviation: the JSON wrapped in a code fence
        body = fenced.group(1)
    try:
        answer = json.loads(body)
    except ValueError:
        raise MalformedAnswer(f"the answer is not JSON: {text[:200]!r}") from None
    if not isinstance(answer, dict):
        raise MalformedAnswer(f"the answer is JSON but not an object: {text[:200]!r}")
    return answer


def cache_key(model: str, messages: list[dict[str, str]], params: dict[str, Any]) -> str:
    """Same model, messages and parameters → same key: a rerun never pays twice for an answer it already has."""
    payload = json.dumps({"model": model, "messages": messages, "params": params}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class Completion:
    text: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    # "stop", "length" (cut at the token limit), …; None for an answer read from the store.
    finish_reason: str | None = None


class CallFailed(Exception):
    """A call that cannot succeed as configured; the message is the error to record. `cause` is the client's error
    when there was one, for a caller that words its own message (a timeout, an HTTP status, no connection)."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class Endpoint:
    """What a call needs besides the prompt: the client, where a learned adaptation is written for other processes
    (read into this process's memo once per batch, before the calls), and the model's context when known (for the
    truncation check)."""

    client: Any
    shared: llm_compat.SharedStore | None = None
    context: llm_compat.Context | None = None


def complete(
    *, endpoint: Endpoint, model: str, messages: list[dict[str, str]], config: dict[str, Any], asked: dict[str, Any]
) -> Completion:
    """One answer for `messages`, with the parameters `asked` adapted to what the model takes: a refusal of
    `max_tokens` or `temperature` is learned (remembered per endpoint and model) and the call made again. Raises
    CallFailed with the error to record (the client has already retried 429s, 5xx and timeouts)."""
    import openai

    client = endpoint.client
    where = str(client.base_url)
    # Memory only: the caller read the shared store once for the batch (llm_compat.MEMO.get with it), so the calls
    # made from a pool's threads never wait on it.
    adaptation = llm_compat.MEMO.get(where, model)
    # Each refusal names one parameter: at most one more call per parameter the model refuses.
    for _ in range(3):
        try:
            response = client.chat.completions.create(
                model=model,
                messages=messages,
                timeout=config["timeout_s"],
                **llm_compat.request_params(asked, adaptation),
            )
        except openai.APIError as exc:
            adapted = llm_compat.adapt_to_refusal(exc, adaptation)
            if adapted is not None:
                adaptation = adapted
                llm_compat.MEMO.put(where, model, adaptation, endpoint.shared)
                continue
            if "response_format" in asked and getattr(exc, "status_code", None) == 400:
                raise CallFailed(llm_compat.refused_format_message(exc), exc) from None
            raise CallFailed(f"{type(exc).__name__}: {exc}", exc) from None
        usage = response.usage
        choice = response.choices[0] if response.choices else None
        return Completion(
            text=choice.message.content if choice else None,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            finish_reason=choice.finish_reason if choice else None,
        )
    raise CallFailed(f"the server kept refusing the parameters for {model} ({adaptation.describe()})")


def cut_problem(completion: Completion, config: dict[str, Any]) -> str:
    """For an answer that did not parse: the token limit cut it (asking again would cut it again), or ""."""
    if completion.finish_reason != "length":
        return ""
    unclosed = llm_compat.strip_reasoning(completion.text or "").unclosed
    return llm_compat.cut_message(config["max_tokens"], in_reasoning=unclosed)


class ResponseCache(Protocol):
    def get(self, key: str) -> Completion | None: ...
    def put(self, key: str, completion: Completion) -> None: ...


@dataclass(frozen=True)
class Asked:
    """What asking one prompt came to (`ask_parsed`): the parsed answer and its reasoning, or why there is none."""

    value: str = ""
    reasoning: str = ""
    error: str = ""
    raw_output: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: int = 0
    # The exception behind `error` when one was raised: the client's (CallFailed.cause) or the parse's
    # MalformedAnswer, for a caller that words its own message; None for a cut or truncated answer.
    cause: BaseException | None = None


def ask_parsed(
    *,
    model: str,
    messages: list[dict[str, str]],
    config: dict[str, Any],
    cache: ResponseCache | None,
    endpoint: Endpoint,
    call_params: dict[str, Any],
    parse: Callable[[str | None], tuple[str, str]],
) -> Asked:
    """Ask the model (a stored answer first), `parse` the answer, ask again when it is malformed (up to the config's
    `attempts`); an Asked with the error at the end. Only a well-formed answer is stored. An answer cut by the
    token limit, or given on a prompt the server cut, is an error at once. Shared by the pointwise judge, the
    pairwise comparison and the naming of suggested groupings, which differ only in what they ask for and how they
    parse it."""
    key = cache_key(model, messages, call_params)
    estimated = llm_compat.estimate_tokens(messages)
    prompt_tokens = completion_tokens = 0
    started = time.perf_counter()
    value = reasoning = problem = raw = ""
    cause: BaseException | None = None
    for attempt in range(config["attempts"]):
        completion = cache.get(key) if cache is not None and attempt == 0 else None
        fresh = completion is None
        if completion is None:
            try:
                completion = complete(
                    endpoint=endpoint, model=model, messages=messages, config=config, asked=call_params
                )
            except CallFailed as exc:
                problem, cause = str(exc), exc.cause
                break
            prompt_tokens += completion.prompt_tokens or 0
            completion_tokens += completion.completion_tokens or 0
        raw = completion.text or ""
        cause = None
        # An answer on a prompt the server cut may not have seen the rubric: an error, whatever it says.
        if fresh and (problem := llm_compat.truncation_problem(estimated, completion.prompt_tokens, endpoint.context)):
            break
        try:
            parsed, why = parse(completion.text)
        except MalformedAnswer as exc:
            if problem := cut_problem(completion, config):
                break  # at temperature 0 the same limit cuts the same answer again
            cause = exc
            problem = f"malformed answer (attempt {attempt + 1} of {config['attempts']}): {exc}"
            continue
        if cache is not None:
            cache.put(key, completion)
        value, reasoning, problem = parsed, why, ""
        break
    return Asked(
        value=value,
        reasoning=reasoning,
        error=problem,
        raw_output=raw,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_ms=round(1000 * (time.perf_counter() - started)),
        cause=cause if problem else None,
    )
