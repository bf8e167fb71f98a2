"""From the spans of one OpenTelemetry trace to one EvalStudio trace record (the native trace format's object).

`trace_record(spans)` is the one entry point: the OTLP receiver's assembly, and the otlp-json and Phoenix file
importers, all read spans through it, so a trace means the same thing whichever way its spans came in. Three
attribute conventions are read, in one pass and mixed freely: OpenInference (`openinference.span.kind`,
`llm.input_messages.*`…), the OpenTelemetry GenAI semantic conventions (`gen_ai.*` attributes and the older
`gen_ai.*.message` events) and Langfuse (`langfuse.*`). Each span is first reduced to a `_Call` (kind, messages
in/out, model, tokens, documents); the record is then built from those:

- input/output: the root span's own text (`input.value`, `langfuse.trace.input`, …) when it is readable text;
  otherwise the first LLM call's last user message and the last LLM call's answer;
- messages: the conversation as the product saw it — every LLM call's input and output in time order, with the
  history each call repeats removed, tool calls in the OpenAI shape (`arguments` as JSON text) and tool results
  (from the calls' inputs, or from TOOL spans when no later call repeats them);
- context: retriever documents in time order; metadata: model(s), summed token counts, latency, user, tags,
  service and environment; session_id from `session.id`, `gen_ai.conversation.id` or `langfuse.session.id`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from annotation.feedback import feedback_from_attributes
from annotation.otel.spans import SpanData

# The source of a trace whose resource names no environment: spans arrive from running products.
DEFAULT_SOURCE = "production"
# Mirrors annotation.trace_format.MAX_SESSION_CHARS (this module does not import the Django-free format to keep
# the dependency one way: trace_format's peer readers import this module).
MAX_SESSION_CHARS = 255
MAX_SOURCE_CHARS = 64

LLM, TOOL, RETRIEVER, OTHER = "LLM", "TOOL", "RETRIEVER", "OTHER"
# gen_ai.operation.name and langfuse.observation.type values, as the span kinds used here.
_GENAI_KINDS = {
    "chat": LLM,
    "text_completion": LLM,
    "generate_content": LLM,
    "execute_tool": TOOL,
}
_LANGFUSE_KINDS = {"generation": LLM, "tool": TOOL, "retriever": RETRIEVER}
_ROLES = {"system", "user", "assistant", "tool", "developer", "function"}
# Older GenAI events, one message each.
_EVENT_ROLES = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_INDEXED = re.compile(r"^(\d+)\.(.+)$")


class NoRootSpan(ValueError):
    """The trace's root span has not arrived (yet): a trace is assembled from its root."""


def root_span(spans: Sequence[SpanData]) -> SpanData:
    """The span without a parent (the earliest, should an exporter have sent several); NoRootSpan if none."""
    roots = [span for span in spans if span.is_root]
    if not roots:
        raise NoRootSpan(f"trace {spans[0].trace_id if spans else '?'} has no root span yet")
    return min(roots, key=lambda span: (span.start_ns, span.span_id))


@dataclass
class _Call:
    """What one span says, whatever convention it used."""

    span: SpanData
    kind: str
    input_messages: list[dict[str, Any]] = field(default_factory=list)
    output_messages: list[dict[str, Any]] = field(default_factory=list)
    model: str = ""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    documents: list[str] = field(default_factory=list)
    tool_result: dict[str, Any] | None = None


def trace_record(spans: Sequence[SpanData]) -> dict[str, Any]:
    """The native trace record for one OTel trace's spans (all of one trace id, in any order)."""
    root = root_span(spans)
    ordered = sorted(spans, key=lambda span: (span.start_ns, span.end_ns, span.span_id))
    calls = [_call(span) for span in ordered]
    llm_calls = [call for call in calls if call.kind == LLM and (call.input_messages or call.output_messages)]
    messages = _conversation(calls)

    input_text = _root_text(root, "input") or _last_user(llm_calls[0].input_messages if llm_calls else [])
    output_text = _root_text(root, "output") or _answer(llm_calls[-1].output_messages if llm_calls else [])
    # A root whose only text is JSON (a request body) still has something to show when no LLM span says more.
    input_text = input_text or _root_text(root, "input", json_ok=True)
    output_text = output_text or _root_text(root, "output", json_ok=True)

    record: dict[str, Any] = {
        "id": root.trace_id,
        "input": input_text,
        "output": output_text,
        # Production unless the resource says otherwise (an `evalstudio.source` resource attribute, e.g. "staging").
        "source": str(root.resource.get("evalstudio.source") or DEFAULT_SOURCE)[:MAX_SOURCE_CHARS],
        "metadata": _metadata(root, spans, calls),
        "timestamp": datetime.fromtimestamp(root.start_ns / 1e9, tz=UTC).isoformat().replace("+00:00", "Z"),
    }
    if messages:
        record["messages"] = messages
    context = _documents(calls)
    if context:
        record["context"] = context
    session = _first_attribute(root, ordered, "session.id", "gen_ai.conversation.id", "langfuse.session.id")
    if session is not None and str(session).strip():
        session = str(session)
        if len(session) <= MAX_SESSION_CHARS:
            record["session_id"] = session
        else:
            record["metadata"]["session.id"] = session
    feedback = _feedback(ordered)
    if feedback:
        record["feedback"] = feedback
    return record


def _feedback(spans: Sequence[SpanData]) -> list[dict[str, Any]]:
    """Users' feedback the product recorded on its spans: `feedback.*` attributes of a span, or of an event named
    `feedback` or `feedback.*` (annotation.feedback names them)."""
    items: list[dict[str, Any]] = []
    for span in spans:
        items += feedback_from_attributes(span.attributes)
        for event in span.events:
            name = str(event.get("name", ""))
            if name == "feedback" or name.startswith("feedback."):
                items += feedback_from_attributes(event.get("attributes") or {})
    return items


# --- one span -------------------------------------------------------------------------------------------------


def _kind(span: SpanData) -> str:
    attributes = span.attributes
    kind = attributes.get("openinference.span.kind")
    if isinstance(kind, str) and kind:
        return kind.upper() if kind.upper() in (LLM, TOOL, RETRIEVER) else OTHER
    operation = attributes.get("gen_ai.operation.name")
    if isinstance(operation, str) and operation in _GENAI_KINDS:
        return _GENAI_KINDS[operation]
    observation = attributes.get("langfuse.observation.type")
    if isinstance(observation, str) and observation.lower() in _LANGFUSE_KINDS:
        return _LANGFUSE_KINDS[observation.lower()]
    if any(key.startswith(("llm.input_messages.", "llm.output_messages.")) for key in attributes) or any(
        key in attributes for key in ("gen_ai.input.messages", "gen_ai.output.messages")
    ):
        return LLM
    if any(event.get("name") in _EVENT_ROLES or event.get("name") == "gen_ai.choice" for event in span.events):
        return LLM
    return OTHER


def _call(span: SpanData) -> _Call:
    attributes = span.attributes
    call = _Call(span=span, kind=_kind(span))
    call.model = _text(
        attributes.get("llm.model_name")
        or attributes.get("gen_ai.response.model")
        or attributes.get("gen_ai.request.model")
        or attributes.get("langfuse.observation.model.name")
        or ""
    )
    call.prompt_tokens = _int(attributes.get("llm.token_count.prompt", attributes.get("gen_ai.usage.input_tokens")))
    call.completion_tokens = _int(
        attributes.get("llm.token_count.completion", attributes.get("gen_ai.usage.output_tokens"))
    )
    call.total_tokens = _int(attributes.get("llm.token_count.total"))
    usage = _json_value(attributes.get("langfuse.observation.usage_details"))
    if isinstance(usage, dict) and call.prompt_tokens is None and call.completion_tokens is None:
        call.prompt_tokens = _int(usage.get("input", usage.get("prompt_tokens")))
        call.completion_tokens = _int(usage.get("output", usage.get("completion_tokens")))
        call.total_tokens = _int(usage.get("total", usage.get("total_tokens")))
    if call.kind == LLM:
        call.input_messages = _openinference_messages(attributes, "llm.input_messages") or _genai_messages(
            attributes.get("gen_ai.input.messages"), attributes.get("gen_ai.system_instructions")
        )
        call.output_messages = _openinference_messages(attributes, "llm.output_messages") or _genai_messages(
            attributes.get("gen_ai.output.messages")
        )
        if not call.input_messages and not call.output_messages:
            call.input_messages, call.output_messages = _event_messages(span.events)
        if not call.input_messages and not call.output_messages:
            call.input_messages, call.output_messages = _langfuse_messages(attributes)
    elif call.kind == RETRIEVER:
        call.documents = _retrieval_documents(attributes)
    elif call.kind == TOOL:
        call.tool_result = _tool_message(span)
    return call


def _indexed(attributes: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """`prefix.N.rest` flattened attributes → one dict of `rest` keys per N, in N order."""
    items: dict[int, dict[str, Any]] = {}
    start = prefix + "."
    for key, value in attributes.items():
        if key.startswith(start):
            match = _INDEXED.match(key[len(start) :])
            if match:
                items.setdefault(int(match.group(1)), {})[match.group(2)] = value
    return [items[index] for index in sorted(items)]


def _openinference_messages(attributes: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    messages = []
    for flat in _indexed(attributes, prefix):
        role = _role(flat.get("message.role"))
        content = flat.get("message.content")
        if content is None:
            parts = [
                _text(part.get("message_content.text"))
                for part in _indexed(flat, "message.contents")
                if part.get("message_content.type", "text") == "text"
            ]
            content = "".join(parts) if parts else None
        tool_calls = [
            _tool_call(
                part.get("tool_call.id"), part.get("tool_call.function.name"), part.get("tool_call.function.arguments")
            )
            for part in _indexed(flat, "message.tool_calls")
        ]
        message = _message(role, content, tool_calls, flat.get("message.tool_call_id"), flat.get("message.name"))
        messages.append(message)
    return messages


def _genai_messages(value: Any, system: Any = None) -> list[dict[str, Any]]:
    """`gen_ai.input.messages`/`gen_ai.output.messages`: JSON text of [{role, parts: [...]}, …]."""
    messages: list[dict[str, Any]] = []
    instructions = _json_value(system)
    if isinstance(instructions, list):
        text = "".join(_text(part.get("content")) for part in instructions if isinstance(part, dict))
        if text:
            messages.append({"role": "system", "content": text})
    elif isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    items = _json_value(value)
    if not isinstance(items, list):
        return messages
    for item in items:
        if not isinstance(item, dict):
            continue
        if "parts" not in item:  # some instrumentations write OpenAI-shaped messages here
            messages.extend(_openai_messages([item]))
            continue
        texts, calls, tool_call_id, results = [], [], None, []
        for part in item.get("parts") or []:
            if not isinstance(part, dict):
                continue
            kind = part.get("type")
            if kind == "text":
                texts.append(_text(part.get("content")))
            elif kind == "tool_call":
                calls.append(_tool_call(part.get("id"), part.get("name"), part.get("arguments")))
            elif kind == "tool_call_response":
                results.append((part.get("id"), part.get("response", part.get("result"))))
        role = _role(item.get("role"))
        if results:
            # A tool message per result: the native shape has one tool_call_id per message.
            for call_id, response in results:
                messages.append(_message("tool", _plain(response), [], call_id or tool_call_id, item.get("name")))
            continue
        messages.append(_message(role, "".join(texts) if texts else None, calls, None, item.get("name")))
    return messages


def _event_messages(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The older GenAI events: `gen_ai.{system,user,assistant,tool}.message` in, `gen_ai.choice` out."""
    inputs, outputs = [], []
    for event in events:
        name, attributes = event.get("name"), event.get("attributes") or {}
        if name in _EVENT_ROLES:
            inputs.append(_event_message(_EVENT_ROLES[name], attributes))
        elif name == "gen_ai.choice":
            body = _json_value(attributes.get("message"))
            if isinstance(body, dict):
                outputs.append(_event_message(_role(body.get("role") or "assistant"), body))
            else:
                outputs.append(_event_message("assistant", attributes))
    return inputs, outputs


def _event_message(role: str, body: dict[str, Any]) -> dict[str, Any]:
    tool_calls = _json_value(body.get("tool_calls"))
    calls = []
    for call in tool_calls if isinstance(tool_calls, list) else []:
        if isinstance(call, dict):
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            calls.append(_tool_call(call.get("id"), function.get("name"), function.get("arguments")))
    return _message(role, _plain(body.get("content")), calls, body.get("id") if role == "tool" else None, None)


def _langfuse_messages(attributes: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A Langfuse generation: `langfuse.observation.input` holds the messages sent (or a prompt), `…output` the
    answer (a message or text)."""
    inputs = _json_value(attributes.get("langfuse.observation.input"))
    outputs = _json_value(attributes.get("langfuse.observation.output"))
    if isinstance(inputs, dict) and isinstance(inputs.get("messages"), list):
        inputs = inputs["messages"]
    in_messages = (
        _openai_messages(inputs)
        if isinstance(inputs, list)
        else [{"role": "user", "content": _plain(inputs)}]
        if inputs not in (None, "")
        else []
    )
    if isinstance(outputs, dict) and isinstance(outputs.get("choices"), list) and outputs["choices"]:
        outputs = outputs["choices"][0].get("message") if isinstance(outputs["choices"][0], dict) else None
    if isinstance(outputs, dict) and "role" in outputs:
        out_messages = _openai_messages([outputs])
    elif isinstance(outputs, list):
        out_messages = _openai_messages(outputs)
    elif outputs not in (None, ""):
        out_messages = [{"role": "assistant", "content": _plain(outputs)}]
    else:
        out_messages = []
    return in_messages, out_messages


def _openai_messages(items: list[Any]) -> list[dict[str, Any]]:
    """Messages already in (roughly) OpenAI's shape, normalised to the native one."""
    messages = []
    for item in items:
        if not isinstance(item, dict):
            continue
        calls = []
        for call in item.get("tool_calls") or []:
            if isinstance(call, dict):
                function = call.get("function") if isinstance(call.get("function"), dict) else {}
                calls.append(_tool_call(call.get("id"), function.get("name"), function.get("arguments")))
        content = item.get("content")
        if isinstance(content, list):
            content = "".join(
                _text(part.get("text")) for part in content if isinstance(part, dict) and part.get("type") == "text"
            )
        messages.append(
            _message(_role(item.get("role")), _plain(content), calls, item.get("tool_call_id"), item.get("name"))
        )
    return messages


def _tool_message(span: SpanData) -> dict[str, Any] | None:
    """A TOOL span (OpenInference `tool.name`/`output.value`, GenAI `gen_ai.tool.*`, Langfuse tool observation) as
    the tool message it answered with."""
    attributes = span.attributes
    output = (
        attributes.get("output.value")
        if "output.value" in attributes
        else attributes.get("gen_ai.tool.call.result", attributes.get("langfuse.observation.output"))
    )
    if output is None:
        return None
    name = attributes.get("tool.name") or attributes.get("gen_ai.tool.name") or span.name
    call_id = attributes.get("tool_call.id") or attributes.get("gen_ai.tool.call.id") or ""
    return _message("tool", _plain(output), [], call_id, name)


def _retrieval_documents(attributes: dict[str, Any]) -> list[str]:
    documents = []
    for flat in _indexed(attributes, "retrieval.documents"):
        content = flat.get("document.content")
        if content not in (None, ""):
            documents.append(_plain(content))
    return documents


# --- shapes ---------------------------------------------------------------------------------------------------


def _message(role: str, content: Any, tool_calls: list[dict[str, Any]], tool_call_id: Any, name: Any) -> dict[str, Any]:
    message: dict[str, Any] = {"role": role, "content": None if content is None else _text(content)}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if role == "tool":
        message["tool_call_id"] = _text(tool_call_id or "")
    if name:
        message["name"] = _text(name)
    return message


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """The native (OpenAI) tool call: `arguments` is JSON text, as stored for every other source."""
    if arguments is None:
        arguments = "{}"
    elif not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))
    return {
        "id": _text(call_id or ""),
        "type": "function",
        "function": {"name": _text(name or ""), "arguments": arguments},
    }


def _role(value: Any) -> str:
    role = _text(value or "").lower()
    if role == "human":
        return "user"
    if role in ("ai", "model"):
        return "assistant"
    return role if role in _ROLES else "user"


def _key(message: dict[str, Any]) -> tuple[Any, ...]:
    """What makes two messages the same one seen twice (an LLM call repeating the history): content compared as
    text, tool-call arguments compared as parsed JSON (spacing differs between exporters)."""
    calls = tuple(
        (call["function"]["name"], _canonical(call["function"]["arguments"]))
        for call in message.get("tool_calls") or ()
    )
    return (message["role"], (message.get("content") or "").strip(), calls, message.get("tool_call_id") or "")


def _canonical(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), sort_keys=True)
    except ValueError:
        return arguments


# --- the whole trace ------------------------------------------------------------------------------------------


def _conversation(calls: list[_Call]) -> list[dict[str, Any]]:
    """Every LLM call's messages in time order without the history each call repeats, plus tool results of TOOL
    spans. A TOOL span's result stands in until a later LLM call's input shows the same result, which then
    replaces it: the call's version is what the model saw, with the tool call's id."""
    conversation: list[dict[str, Any]] = []
    keys: list[tuple[Any, ...]] = []
    from_tool_spans: set[int] = set()  # positions of results taken from TOOL spans
    for call in calls:
        if call.kind == TOOL and call.tool_result is not None:
            if _tool_seen(call.tool_result, conversation) is None:
                from_tool_spans.add(len(conversation))
                conversation.append(call.tool_result)
                keys.append(_key(call.tool_result))
            continue
        if call.kind != LLM:
            continue
        turn = call.input_messages + call.output_messages
        turn_keys = [_key(message) for message in turn]
        shared = _shared_prefix(keys, turn_keys)
        for message, key in zip(turn[shared:], turn_keys[shared:], strict=True):
            if message["role"] == "tool":
                seen = _tool_seen(message, conversation)
                if seen is not None:
                    if seen in from_tool_spans:
                        conversation[seen], keys[seen] = message, key
                        from_tool_spans.discard(seen)
                    continue
            if message["role"] == "system" and key in keys:
                continue
            conversation.append(message)
            keys.append(key)
    return conversation


def _shared_prefix(known: list[tuple[Any, ...]], turn: list[tuple[Any, ...]]) -> int:
    """How many leading messages of `turn` the conversation already holds, matched in order (usually the whole
    conversation is a prefix of the turn's input; a call may also resend only part of the history)."""
    count = 0
    position = 0
    for key in turn:
        try:
            position = known.index(key, position) + 1
        except ValueError:
            break
        count += 1
    return count


def _tool_seen(message: dict[str, Any], conversation: list[dict[str, Any]]) -> int | None:
    """The position of the same tool result in the conversation: the same call id, or the same text when one of
    the two has no id (TOOL spans often carry none)."""
    for index, seen in enumerate(conversation):
        if seen["role"] != "tool":
            continue
        if message.get("tool_call_id") and seen.get("tool_call_id") == message["tool_call_id"]:
            return index
        if (seen.get("content") or "").strip() == (message.get("content") or "").strip() and (
            not seen.get("tool_call_id") or not message.get("tool_call_id")
        ):
            return index
    return None


def _documents(calls: list[_Call]) -> list[str]:
    documents: list[str] = []
    for call in calls:
        for document in call.documents:
            if document not in documents:
                documents.append(document)
    return documents


def _root_text(root: SpanData, side: str, *, json_ok: bool = False) -> str:
    """The root's own input or output as readable text. JSON text (a request body, a structured answer) counts
    only when `json_ok`, or when it is a plain JSON string or an object with one obvious text field."""
    attributes = root.attributes
    for key in (f"langfuse.trace.{side}", f"{side}.value", f"langfuse.observation.{side}"):
        value = attributes.get(key)
        if value in (None, ""):
            continue
        text = _text(value)
        is_json = attributes.get(f"{side}.mime_type") == "application/json" or key.startswith("langfuse.")
        parsed = _json_value(text) if is_json or text.lstrip().startswith(("{", "[", '"')) else text
        if isinstance(parsed, str):
            return parsed
        if isinstance(parsed, dict):
            for field_name in ("input", "query", "question", "text", "content", "output", "answer", "message"):
                if isinstance(parsed.get(field_name), str) and len(parsed) <= 2:
                    return parsed[field_name]
        if json_ok:
            return text
    return ""


def _last_user(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "user" and message.get("content"):
            return message["content"]
    return ""


def _answer(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message["role"] == "assistant" and message.get("content"):
            return message["content"]
    return ""


def _first_attribute(root: SpanData, spans: Sequence[SpanData], *keys: str) -> Any:
    for span in (root, *spans):
        for key in keys:
            value = span.attributes.get(key)
            if value not in (None, ""):
                return value
    return None


def _metadata(root: SpanData, spans: Sequence[SpanData], calls: list[_Call]) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "otel.trace_id": root.trace_id,
        "otel.root_span": root.name,
        "otel.span_count": len(spans),
        "latency_ms": round(root.duration_ns / 1e6, 3),
    }
    for key in ("service.name", "deployment.environment", "deployment.environment.name"):
        if key in root.resource:
            metadata[key] = root.resource[key]
    # Free-form metadata first, so the fields read from the conventions below win over a same-named key.
    extra = _json_value(root.attributes.get("metadata"))
    if isinstance(extra, dict):
        metadata.update({key: value for key, value in extra.items() if key not in metadata})
    for key, value in root.attributes.items():
        if key.startswith("langfuse.trace.metadata."):
            metadata[key.removeprefix("langfuse.trace.metadata.")] = _json_value(value)
    if root.attributes.get("langfuse.trace.name"):
        metadata["trace_name"] = _text(root.attributes["langfuse.trace.name"])
    tags = root.attributes.get("tag.tags", root.attributes.get("langfuse.trace.tags"))
    if tags:
        metadata["tags"] = tags if isinstance(tags, list) else _json_value(tags)
    user = _first_attribute(root, spans, "user.id", "langfuse.user.id", "enduser.id")
    if user is not None:
        metadata["user_id"] = _text(user)
    models = []
    for call in calls:
        if call.kind == LLM and call.model and call.model not in models:
            models.append(call.model)
    if models:
        metadata["model"] = models[-1]
        if len(models) > 1:
            metadata["models"] = models
    llm_calls = [call for call in calls if call.kind == LLM]
    if llm_calls:
        metadata["llm_calls"] = len(llm_calls)
    for name, attribute in (
        ("prompt_tokens", "prompt_tokens"),
        ("completion_tokens", "completion_tokens"),
        ("total_tokens", "total_tokens"),
    ):
        values = [getattr(call, attribute) for call in calls if getattr(call, attribute) is not None]
        if values:
            metadata[name] = sum(values)
    if "total_tokens" not in metadata and ("prompt_tokens" in metadata or "completion_tokens" in metadata):
        metadata["total_tokens"] = metadata.get("prompt_tokens", 0) + metadata.get("completion_tokens", 0)
    errors = [span.name for span in spans if span.status_code == "error"]
    if errors:
        metadata["otel.error_spans"] = errors
    return metadata


# --- values ---------------------------------------------------------------------------------------------------


def _json_value(value: Any) -> Any:
    """JSON text decoded; anything else (or text that is not JSON) as it is."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[", '"'):
            try:
                return json.loads(stripped)
            except ValueError:
                return value
    return value


def _plain(value: Any) -> str | None:
    """A message body as text: strings as they are, structured values as compact JSON."""
    if value is None:
        return None
    value = _json_value(value) if isinstance(value, str) and value.strip()[:1] == '"' else value
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)
