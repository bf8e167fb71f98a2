"""What differs between the models people run behind an OpenAI-compatible endpoint, handled in one place. Django-free.

- **Parameters a model refuses.** OpenAI's reasoning models answer 400 `invalid_request_error` to `max_tokens`
  ("Unsupported parameter: 'max_tokens' … Use 'max_completion_tokens' instead", param `max_tokens`) and to a
  temperature other than the default ("Unsupported value: 'temperature' does not support 0 …", param
  `temperature`). `adapt_to_refusal` reads such a refusal into an `Adaptation` (send `max_completion_tokens`, send
  no temperature); the call is made again with it, and `AdaptationMemo` remembers it per (endpoint, model) so later
  calls go right the first time.
- **Reasoning before the answer.** DeepSeek-R1 and Qwen3 served by Ollama, vLLM or llama.cpp write
  `<think>…</think>` (or `<thinking>…</thinking>`) before the JSON, leave `<think>` unclosed when the token limit
  cuts them, or (when the chat template opens the block itself) write only the closing `</think>`.
  `strip_reasoning` removes those blocks; what is left is parsed strictly.
- **JSON-schema output**, opt-in (`response_format: "json_schema"`): `json_schema_format` is the request's
  `response_format`.
- **Prompts longer than the context.** `estimate_tokens` counts characters / 4 (an estimate: English runs about
  four characters a token; code, JSON and non-Latin scripts run fewer, so the estimate is low for those);
  `context_from_models` / `context_from_ollama_show` read the context the server reports; `truncation_problem`
  says when the server's own count of the prompt's tokens shows it read much less than was sent (Ollama's
  OpenAI endpoint cuts a prompt longer than its `num_ctx` silently and reports the tokens it kept).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol
from urllib.parse import urlsplit

# --- parameters a model refuses -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Adaptation:
    """How to send the sampling parameters to one model: the token limit's name, and whether to send temperature."""

    max_tokens_param: str = "max_tokens"
    send_temperature: bool = True

    @property
    def is_default(self) -> bool:
        return self == Adaptation()

    def describe(self) -> str:
        parts = []
        if self.max_tokens_param != "max_tokens":
            parts.append(f"the token limit sent as {self.max_tokens_param}")
        if not self.send_temperature:
            parts.append("no temperature (the model takes only its default)")
        return "; ".join(parts) or "parameters as configured"

    def as_dict(self) -> dict[str, Any]:
        return {"max_tokens_param": self.max_tokens_param, "send_temperature": self.send_temperature}

    @classmethod
    def from_dict(cls, value: object) -> Adaptation | None:
        if not isinstance(value, dict):
            return None
        param = value.get("max_tokens_param")
        send = value.get("send_temperature")
        if param not in ("max_tokens", "max_completion_tokens") or not isinstance(send, bool):
            return None
        return cls(max_tokens_param=param, send_temperature=send)


def request_params(params: Mapping[str, Any], adaptation: Adaptation) -> dict[str, Any]:
    """The parameters as this model takes them: `params` are what the judge's config asks for (and its cache key)."""
    sent = dict(params)
    if "max_tokens" in sent and adaptation.max_tokens_param != "max_tokens":
        sent[adaptation.max_tokens_param] = sent.pop("max_tokens")
    if not adaptation.send_temperature:
        sent.pop("temperature", None)
    return sent


def adapt_to_refusal(exc: BaseException, adaptation: Adaptation) -> Adaptation | None:
    """The adaptation that answers a 400 refusing `max_tokens` or `temperature`, or None when `exc` is another error
    (or one already adapted to: the same refusal twice is not retried forever)."""
    if getattr(exc, "status_code", None) != 400:
        return None
    param = getattr(exc, "param", None)
    message = str(getattr(exc, "message", "") or exc)
    if param == "max_tokens" and "max_completion_tokens" in message:
        if adaptation.max_tokens_param == "max_completion_tokens":
            return None
        return replace(adaptation, max_tokens_param="max_completion_tokens")
    if param == "temperature" and ("Unsupported value" in message or "not support" in message):
        if not adaptation.send_temperature:
            return None
        return replace(adaptation, send_temperature=False)
    return None


class SharedStore(Protocol):
    """Where the memo keeps what it learned so other processes (workers) share it, e.g. Django's cache."""

    def get(self, key: str) -> Any: ...
    def set(self, key: str, value: Any) -> None: ...


class AdaptationMemo:
    """Per (endpoint, model): the adaptation learned from a refusal. Read from this process's memory first, then the
    shared store; a lost entry costs one refused call, which teaches it again. That the shared store has nothing is
    remembered for `recheck_seconds`, so a model needing no adaptation costs no store read per call."""

    def __init__(self, recheck_seconds: float = 60.0) -> None:
        self._lock = threading.Lock()
        self._known: dict[tuple[str, str], Adaptation] = {}
        self._missed: dict[tuple[str, str], float] = {}
        self.recheck_seconds = recheck_seconds

    @staticmethod
    def key(endpoint: str, model: str) -> str:
        return f"llm-adaptation:{endpoint.rstrip('/')}:{model}"

    def get(self, endpoint: str, model: str, shared: SharedStore | None = None) -> Adaptation:
        pair = (endpoint, model)
        with self._lock:
            known = self._known.get(pair)
            missed = self._missed.get(pair)
        if known is not None:
            return known
        if shared is None or (missed is not None and time.monotonic() - missed < self.recheck_seconds):
            return Adaptation()
        found = Adaptation.from_dict(shared.get(self.key(endpoint, model)))
        with self._lock:
            if found is None:
                self._missed[pair] = time.monotonic()
            else:
                self._known[pair] = found
        return found or Adaptation()

    def put(self, endpoint: str, model: str, adaptation: Adaptation, shared: SharedStore | None = None) -> None:
        with self._lock:
            self._known[(endpoint, model)] = adaptation
        if shared is not None:
            shared.set(self.key(endpoint, model), adaptation.as_dict())

    def clear(self) -> None:
        with self._lock:
            self._known.clear()
            self._missed.clear()


# The process's memo: every LLM call in this process (judges, pairwise comparisons, the bias battery, the naming of
# suggested groupings) reads and teaches it.
MEMO = AdaptationMemo()


# --- reasoning before the answer ----------------------------------------------------------------------------------

_CLOSED_BLOCK = re.compile(r"<(think|thinking)>.*?</\1>", re.DOTALL | re.IGNORECASE)
_OPEN_TAG = re.compile(r"<(think|thinking)>", re.IGNORECASE)
_CLOSE_TAG = re.compile(r"</(think|thinking)>", re.IGNORECASE)


@dataclass(frozen=True)
class Stripped:
    """The answer without its reasoning blocks; `unclosed` when a block was still open at the end (the model stopped,
    or was cut, while reasoning)."""

    text: str
    had_reasoning: bool
    unclosed: bool


def strip_reasoning(text: str) -> Stripped:
    """`text` without `<think>…</think>` / `<thinking>…</thinking>` blocks, without reasoning before a lone closing
    tag (the template opened the block), and without an unclosed block at the end."""
    body = _CLOSED_BLOCK.sub("", text)
    had = body != text
    # A closing tag with no opening one: the chat template wrote `<think>` into the prompt, so the answer begins
    # inside the block. Everything up to the last closing tag is reasoning.
    closes = list(_CLOSE_TAG.finditer(body))
    if closes:
        body = body[closes[-1].end() :]
        had = True
    opened = _OPEN_TAG.search(body)
    unclosed = opened is not None
    if opened is not None:
        body = body[: opened.start()]
        had = True
    return Stripped(text=body.strip(), had_reasoning=had, unclosed=unclosed)


def cut_message(max_tokens: int, *, in_reasoning: bool) -> str:
    where = " while the model was still reasoning (inside <think>)" if in_reasoning else ""
    return f"the answer was cut at max_tokens={max_tokens}{where} — raise max_tokens"


# --- JSON-schema output -------------------------------------------------------------------------------------------


def json_schema_format(name: str, properties: dict[str, Any]) -> dict[str, Any]:
    """A strict `response_format` asking for an object with exactly `properties` (all required)."""
    return {
        "type": "json_schema",
        "json_schema": {
            "name": name,
            "strict": True,
            "schema": {
                "type": "object",
                "properties": properties,
                "required": list(properties),
                "additionalProperties": False,
            },
        },
    }


VERDICT_FORMAT = json_schema_format(
    "verdict", {"reasoning": {"type": "string"}, "verdict": {"type": "string", "enum": ["pass", "fail"]}}
)


def refused_format_message(exc: BaseException) -> str:
    """The error for a 400 while `response_format: "json_schema"` was sent, naming the setting."""
    message = str(getattr(exc, "message", "") or exc)
    about_it = getattr(exc, "param", None) == "response_format" or re.search(
        r"response_format|json_schema", message, re.IGNORECASE
    )
    head = (
        "response_format: the server refused the JSON-schema response format"
        if about_it
        else 'response_format: the server refused the request while "response_format": "json_schema" was set '
        "(it may not support JSON-schema output)"
    )
    return (
        f'{head} ({type(exc).__name__}: {message}); remove "response_format" from the judge\'s config, or use a '
        "model and server that support structured outputs"
    )


# --- prompts longer than the context ------------------------------------------------------------------------------

CHARS_PER_TOKEN = 4
# Per message, what chat templates add around its content (role markers, separators): a few tokens.
TOKENS_PER_MESSAGE = 4
# When the server's context is known: a prompt estimated over it, of which the server read at most the context and
# less than this share of the estimate, was cut (chars/4 overestimating by 15% is plausible; the server reading no
# more than its context is not a coincidence).
AT_CEILING_RATIO = 0.85
# When it is not known (or only the model's trained maximum is, as Ollama's context_length, while Ollama runs it with
# a smaller num_ctx): the server read less than this share of the estimate, and a count that is a context size (just
# under a power of two from 1,024: Ollama cuts a prompt to its num_ctx). Both are needed, because Ollama versions
# that count only the tokens not already in their prompt cache under-report too (ollama/ollama#2068, #16414), and a
# count of 0 is that, never a cut.
TRUNCATION_RATIO = 0.5
CONTEXT_SIZE_SLACK = 0.03
# Below this estimate a shortfall says nothing: small prompts are where per-message overheads dominate.
TRUNCATION_MIN_TOKENS = 256


def estimate_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    """The prompt's tokens estimated as characters / 4, plus a few per message."""
    chars = sum(len(str(m.get("content") or "")) for m in messages)
    return chars // CHARS_PER_TOKEN + TOKENS_PER_MESSAGE * len(messages)


@dataclass(frozen=True)
class Context:
    """A model's context window in tokens and where the figure comes from (shown with every warning)."""

    tokens: int
    source: str


def context_from_models(listing: Mapping[str, Any], model: str) -> Context | None:
    """vLLM's `GET /v1/models` lists each model's `max_model_len`."""
    for entry in listing.get("data") or []:
        if isinstance(entry, Mapping) and entry.get("id") == model:
            value = entry.get("max_model_len")
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return Context(value, f"the server's /v1/models max_model_len for {model}")
    return None


_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)\s*$", re.MULTILINE)


def context_from_ollama_show(shown: Mapping[str, Any], model: str) -> Context | None:
    """Ollama's `POST /api/show`: `num_ctx` among the model's parameters is the context it runs with; otherwise the
    model's trained `<arch>.context_length` (Ollama may still run it with a smaller default, which the truncation
    check catches)."""
    parameters = shown.get("parameters")
    if isinstance(parameters, str) and (found := _NUM_CTX.search(parameters)):
        return Context(int(found.group(1)), f"Ollama's num_ctx for {model}")
    info = shown.get("model_info")
    if isinstance(info, Mapping):
        for key, value in info.items():
            if key.endswith(".context_length") and isinstance(value, int) and value > 0:
                return Context(value, f"Ollama's context_length for {model}")
    return None


def over_context_warning(estimated: int, max_tokens: int, context: Context | None) -> str:
    """A warning when the estimated prompt plus the answer's token limit exceeds the context, else ""."""
    if context is None or estimated + max_tokens <= context.tokens:
        return ""
    return (
        f"the prompt is about {estimated:,} tokens (estimated as characters / 4) and the answer may take "
        f"{max_tokens:,}: more than the model's context of {context.tokens:,} tokens ({context.source}); the "
        "server may cut the prompt, dropping the rubric or examples, or refuse it"
    )


def _is_context_size(tokens: int) -> bool:
    size = 1024
    while size < tokens:
        size *= 2
    return tokens >= size * (1 - CONTEXT_SIZE_SLACK)


def truncation_problem(estimated: int, reported: int | None, context: Context | None) -> str:
    """The error for a verdict given on a prompt the server cut, judged from its own count of the prompt's tokens,
    or "" when nothing shows a cut."""
    if not reported or estimated < TRUNCATION_MIN_TOKENS:
        return ""
    at_ceiling = (
        context is not None and estimated > context.tokens >= reported and reported < AT_CEILING_RATIO * estimated
    )
    cut_to_a_context = reported < TRUNCATION_RATIO * estimated and _is_context_size(reported)
    if not (at_ceiling or cut_to_a_context):
        return ""
    limit = f" (the model's context: {context.tokens:,} tokens, {context.source})" if context else ""
    return (
        f"the server read only {reported:,} of the prompt's ~{estimated:,} tokens (estimated as characters / 4): it "
        f"cut the prompt to its context{limit}, so the verdict may not have seen the rubric or the examples; raise "
        "the server's context (Ollama: num_ctx or OLLAMA_CONTEXT_LENGTH) or send fewer few-shot examples"
    )


def probe_context(client: Any, model: str, *, timeout: float = 5.0) -> Context | None:
    """Ask the server for the model's context: vLLM's /v1/models, then Ollama's /api/show (at the server's root),
    through the judge's own client (one try each, `timeout` seconds). Any failure is "unknown": the warning is a
    courtesy, never a reason for a judgment to fail."""
    import openai

    quick = client.with_options(max_retries=0, timeout=timeout)
    base = str(client.base_url).rstrip("/")
    if urlsplit(base).hostname == "api.openai.com":
        return None  # OpenAI's models list has no context length, and it has no /api/show: nothing to ask
    try:
        listed = quick.get(f"{base}/models", cast_to=object)
        if isinstance(listed, Mapping) and (found := context_from_models(listed, model)):
            return found
    except (openai.APIError, ValueError):
        pass
    root = base[: -len("/v1")] if base.endswith("/v1") else base
    try:
        shown = quick.post(f"{root}/api/show", body={"model": model}, cast_to=object)
    except (openai.APIError, ValueError):
        return None
    return context_from_ollama_show(shown, model) if isinstance(shown, Mapping) else None
