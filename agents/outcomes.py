"""What an outcome grader looks at: the end of a trial, or — only with the tool-calls target — the path to it.
No Django.

- final output: the trace's `output`; when that is empty, the content of the last assistant message (agent traces
  often carry the answer only in `messages`). Tool calls, tool results and earlier messages are never read.
- final state: a JSON object. `metadata["final_state"]` when the trace has one (the state of the world the agent
  left behind, e.g. the order record after the run); otherwise the output parsed as JSON, when it is an object.
  A trial with neither has no final state: grading it is an error, shown as such and never counted as a pass.
- tool calls: the trial's `messages`, read by a tool check (judges.providers.tool_calls). That is the path, not the
  outcome: an agent can call every right tool and still leave the customer without an answer, or reach the right
  end by a path no check foresaw. A trial with no messages recorded no path: grading it is an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

FINAL_OUTPUT = "final_output"
FINAL_STATE = "final_state"
TOOL_CALLS = "tool_calls"
NO_PATH = "no messages: the trial recorded no path, so its tool calls cannot be checked"


@dataclass(frozen=True)
class Subject:
    """The text an assertion checks (for a final state: the object as JSON), or why there is none."""

    text: str | None
    error: str = ""


def final_output(output: str, messages: Any) -> str:
    """The output, or the last assistant message's text content when the output is empty ("" if none)."""
    if output:
        return output
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "assistant":
                content = message.get("content")
                if isinstance(content, str) and content:
                    return content
                if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}]
                    parts = [p.get("text") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
                    if any(parts):
                        return "".join(parts)
                # The last assistant turn is the answer; one with only tool calls means the run ended on the path,
                # with no final output, and earlier turns are not the end of the trial.
                return ""
    return ""


def final_state(output: str, metadata: Any) -> Subject:
    """The final state as JSON text, from metadata["final_state"] or else the output; an error when neither is a
    JSON object."""
    if isinstance(metadata, dict) and "final_state" in metadata:
        state = metadata["final_state"]
        if isinstance(state, dict):
            return Subject(text=json.dumps(state, ensure_ascii=False, sort_keys=True))
        return Subject(
            text=None, error=f"metadata.final_state is a {_json_type(state)}, not a JSON object: no final state"
        )
    try:
        parsed = json.loads(output) if output else None
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return Subject(text=json.dumps(parsed, ensure_ascii=False, sort_keys=True))
    return Subject(
        text=None, error="no final state: the trace has no metadata.final_state and its output is not a JSON object"
    )


def subject_of(target: str, *, output: str, messages: Any, metadata: Any) -> Subject:
    if target == FINAL_OUTPUT:
        return Subject(text=final_output(output, messages))
    if target == FINAL_STATE:
        return final_state(output, metadata)
    raise ValueError(f"unknown grader target {target!r}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "list"}.get(type(value), "value")
