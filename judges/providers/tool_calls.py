"""Tool checks: assertions on the tool calls a trace made (`"target": "tool_calls"`). No Django here.

The calls are read from the trace's OpenAI-format `messages`: each assistant message's `tool_calls`
(`{"id", "type": "function", "function": {"name", "arguments": "<JSON text>"}}`; the legacy `function_call` too),
paired with the `role: tool` message answering each call id. Checks:
- `{"check": "tool_called", "tool": "freeze_card", "arguments_schema": {...}}` — the tool was called at least once
  (with arguments matching the JSON Schema, when one is given);
- `{"check": "tool_not_called", "tool": "close_account"}` — never called (never with matching arguments, when a
  schema is given);
- `{"check": "tool_call_count", "tool": "search", "max_times": 3}` — called between `min_times` and `max_times`
  times (at least one bound);
- `{"check": "tool_called", "in_order": ["get_cards", {"tool": "freeze_card", "arguments_schema": {...}}]}` — these
  calls happened in this order (others may come between them).

Path-insensitive by default: a check on one tool does not care what else was called, or when; order counts only
in `in_order`. A trace with no messages has no recorded path: every tool check fails on it, saying so, rather than
passing "never called" on a path it cannot see.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.validation import Expected, problems
from judges.providers import Outcome
from judges.providers.schemas import SchemaUnusable, checked_schema, first_error

TARGET = "tool_calls"
_UNREADABLE = object()
NAMES_SHOWN = 10  # tool names listed in a reason; a long trajectory is summarised, not pasted


@dataclass(frozen=True)
class ToolCall:
    """One call as the trace recorded it: where (`messages[i]`), its id, the tool's name, the arguments (parsed
    from their JSON text; `arguments_error` says why they could not be) and the tool's result, if one came back."""

    message: int
    id: str
    name: str
    arguments: Any
    arguments_error: str = ""
    result: str | None = None

    @property
    def where(self) -> str:
        return f"messages[{self.message}]" + (f" ({self.id})" if self.id else "")


def _arguments(raw: Any) -> tuple[Any, str]:
    if isinstance(raw, dict | list):
        return raw, ""
    if raw in (None, ""):
        return {}, ""  # a call without arguments
    if not isinstance(raw, str):
        return _UNREADABLE, f"arguments are a {type(raw).__name__}, not JSON text"
    try:
        return json.loads(raw), ""
    except ValueError as exc:
        return _UNREADABLE, f"arguments are not valid JSON ({exc})"


def _call(message: int, raw: Any) -> ToolCall:
    if not isinstance(raw, dict):
        return ToolCall(message=message, id="", name="", arguments=_UNREADABLE, arguments_error="not a call object")
    function = raw.get("function") if isinstance(raw.get("function"), dict) else raw
    arguments, error = _arguments(function.get("arguments"))
    name = function.get("name")
    return ToolCall(
        message=message,
        id=str(raw.get("id") or ""),
        name=name if isinstance(name, str) else "",
        arguments=arguments,
        arguments_error=error,
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "" if content is None else json.dumps(content, ensure_ascii=False)


def read_tool_calls(messages: Any) -> list[ToolCall] | None:
    """Every tool call in the messages, in order, each with its result when a `role: tool` message answers its id
    (or, in the legacy format, a `role: function` message follows it); None when there are no messages to read."""
    if not isinstance(messages, list):
        return None
    calls: list[ToolCall] = []
    results: dict[str, str] = {}
    legacy_results: dict[int, str] = {}
    waiting_legacy: int | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        raw_calls = message.get("tool_calls")
        if role == "assistant" and isinstance(raw_calls, list):
            calls.extend(_call(index, raw) for raw in raw_calls)
        if role == "assistant" and isinstance(message.get("function_call"), dict):
            waiting_legacy = len(calls)
            calls.append(_call(index, message["function_call"]))
        if role == "tool" and isinstance(message.get("tool_call_id"), str):
            results.setdefault(message["tool_call_id"], _text(message.get("content")))
        if role == "function" and waiting_legacy is not None:
            legacy_results[waiting_legacy] = _text(message.get("content"))
            waiting_legacy = None
    return [
        ToolCall(
            message=call.message,
            id=call.id,
            name=call.name,
            arguments=call.arguments,
            arguments_error=call.arguments_error,
            result=results.get(call.id) if call.id else legacy_results.get(i),
        )
        for i, call in enumerate(calls)
    ]


# --- configs --------------------------------------------------------------------------------------------------------

ToolName = Annotated[str, Expected("a tool's name"), Field(min_length=1)]
ArgumentsSchema = Annotated[Any, Expected("a JSON Schema for the call's arguments"), AfterValidator(checked_schema)]
Times = Annotated[int | None, Expected("a non-negative whole number"), Field(ge=0)]


class Step(BaseModel):
    """One step of `in_order` written as an object."""

    model_config = ConfigDict(extra="forbid", strict=True)

    tool: ToolName
    arguments_schema: ArgumentsSchema = None


def _steps(steps: list[Any]) -> list[Any]:
    """Each step is a tool's name or a Step object; the first bad one is named by its position (step 1 is first)."""
    for number, step in enumerate(steps, start=1):
        if isinstance(step, str):
            if not step:
                raise ValueError(f"step {number}: expected a tool's name, got ''")
            continue
        if not isinstance(step, dict):
            raise ValueError(
                f'step {number}: expected a tool\'s name or a {{"tool", "arguments_schema"}} object, got {step!r}'
            )
        try:
            Step.model_validate(step)
        except ValidationError as exc:
            unknown = "{key}: not a setting of a step (settings: {keys})"
            raise ValueError(
                f"step {number}: " + "; ".join(problems(exc, Step, root="step", unknown=unknown))
            ) from None
    return steps


class _ToolCheck(BaseModel):
    """What every tool check has. Strict, like the other checks: JSON's 3 is not "3"."""

    model_config = ConfigDict(extra="forbid", strict=True)

    check: str
    target: Annotated[Literal["tool_calls"], Expected("tool_calls (a tool check reads the trace's tool calls)")] = (
        TARGET
    )


class ToolCalledCheck(_ToolCheck):
    check: Literal["tool_called"]
    tool: Annotated[str | None, Expected("a tool's name"), Field(min_length=1)] = None
    arguments_schema: ArgumentsSchema = None
    in_order: Annotated[
        list[Any] | None,
        Expected('a list of at least 2 steps, each a tool\'s name or a {"tool", "arguments_schema"} object'),
        Field(min_length=2),
        AfterValidator(lambda steps: steps if steps is None else _steps(steps)),
    ] = None

    @model_validator(mode="after")
    def _one_subject(self) -> ToolCalledCheck:
        if self.tool is None and self.in_order is None:
            raise ValueError(
                "tool / in_order: give the tool's name (tool), or the tools in the order they must be called (in_order)"
            )
        if self.tool is not None and self.in_order is not None:
            raise ValueError(
                "tool / in_order: give one of them: tool for one tool (called at any point), in_order for several "
                "in that order"
            )
        if self.in_order is not None and self.arguments_schema is not None:
            raise ValueError("arguments_schema: goes with tool; give each step of in_order its own arguments_schema")
        return self


class ToolNotCalledCheck(_ToolCheck):
    check: Literal["tool_not_called"]
    tool: ToolName
    arguments_schema: ArgumentsSchema = None


class ToolCallCountCheck(_ToolCheck):
    check: Literal["tool_call_count"]
    tool: ToolName
    arguments_schema: ArgumentsSchema = None
    min_times: Times = None
    max_times: Times = None

    @model_validator(mode="after")
    def _bounded(self) -> ToolCallCountCheck:
        if self.min_times is None and self.max_times is None:
            raise ValueError("min_times / max_times: give at least one bound")
        if self.min_times is not None and self.max_times is not None and self.min_times > self.max_times:
            raise ValueError(f"min_times: {self.min_times} is above max_times {self.max_times}")
        return self


TOOL_CHECK_MODELS: dict[str, type[_ToolCheck]] = {
    "tool_called": ToolCalledCheck,
    "tool_not_called": ToolNotCalledCheck,
    "tool_call_count": ToolCallCountCheck,
}


# --- judging --------------------------------------------------------------------------------------------------------


def _matches(call: ToolCall, tool: str, schema: Any) -> tuple[bool, str]:
    """Whether the call is of `tool` with arguments matching `schema` (any arguments when None), and if it is of
    the tool but its arguments do not match, why."""
    if call.name != tool:
        return False, ""
    if schema is None:
        return True, ""
    if call.arguments is _UNREADABLE:
        return False, f"{call.where}: {call.arguments_error}"
    problem = first_error(schema, call.arguments)
    return problem is None, "" if problem is None else f"{call.where} breaks it {problem}"


def _named(calls: list[ToolCall]) -> str:
    names = [call.name or "?" for call in calls]
    if not names:
        return "no tool was called"
    shown = ", ".join(names[:NAMES_SHOWN])
    more = f" and {len(names) - NAMES_SHOWN} more" if len(names) > NAMES_SHOWN else ""
    return f"calls: {shown}{more}"


def _with(schema: Any) -> str:
    return "" if schema is None else " with arguments matching the schema"


def _no_result(call: ToolCall) -> str:
    return "" if call.result is not None else "; no tool result answers it"


def _times(n: int) -> str:
    return f"{n} time{'s' if n != 1 else ''}"


def _called(calls: list[ToolCall], tool: str, schema: Any) -> Outcome:
    reasons = []
    for call in calls:
        matched, reason = _matches(call, tool, schema)
        if matched:
            return Outcome(
                verdict="pass", reasoning=f"{tool} was called{_with(schema)} at {call.where}{_no_result(call)}"
            )
        if reason:
            reasons.append(reason)
    if not reasons:
        return Outcome(verdict="fail", reasoning=f"{tool} was never called ({_named(calls)})")
    return Outcome(
        verdict="fail",
        reasoning=f"{tool} was called {_times(len(reasons))}, never with arguments matching the schema: "
        + "; ".join(reasons[:3])
        + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else ""),
    )


def _step(step: Any) -> tuple[str, Any]:
    return (step, None) if isinstance(step, str) else (step["tool"], step.get("arguments_schema"))


def _in_order(calls: list[ToolCall], steps: list[Any]) -> Outcome:
    # Earliest match for each step in turn: if any ordered choice of calls fits, this one does.
    position, found = 0, []
    for number, raw in enumerate(steps, start=1):
        tool, schema = _step(raw)
        match = next((i for i in range(position, len(calls)) if _matches(calls[i], tool, schema)[0]), None)
        if match is None:
            after = f" after {found[-1]}" if found else ""
            anywhere = any(_matches(call, tool, schema)[0] for call in calls)
            why = " (it was called, but not in this order)" if anywhere and found else ""
            return Outcome(
                verdict="fail",
                reasoning=f"step {number} of {len(steps)}: no call of {tool}{_with(schema)}{after}{why} "
                f"({_named(calls)})",
            )
        found.append(f"{tool} at {calls[match].where}")
        position = match + 1
    return Outcome(verdict="pass", reasoning="called in order: " + ", then ".join(found))


def judge(config: dict[str, Any], messages: Any) -> Outcome:
    """Apply a validated tool check to a trace's messages."""
    calls = read_tool_calls(messages)
    if calls is None:
        return Outcome(verdict="fail", reasoning="the trace has no messages, so there are no tool calls to check")
    check = config["check"]
    schema = config.get("arguments_schema")
    try:
        if check == "tool_called" and "in_order" in config:
            return _in_order(calls, config["in_order"])
        tool = config["tool"]
        if check == "tool_called":
            return _called(calls, tool, schema)
        matching = [call for call in calls if _matches(call, tool, schema)[0]]
        if check == "tool_not_called":
            if not matching:
                return Outcome(verdict="pass", reasoning=f"{tool} was never called{_with(schema)} ({_named(calls)})")
            where = ", ".join(call.where for call in matching[:3])
            return Outcome(
                verdict="fail",
                reasoning=f"{tool} was called{_with(schema)} {_times(len(matching))} (forbidden): {where}",
            )
        low, high = config.get("min_times"), config.get("max_times")
        count = f"{tool} was called{_with(schema)} {_times(len(matching))}"
        if low is not None and len(matching) < low:
            return Outcome(verdict="fail", reasoning=f"{count}, fewer than {low}")
        if high is not None and len(matching) > high:
            return Outcome(verdict="fail", reasoning=f"{count}, more than {high}")
        return Outcome(verdict="pass", reasoning=f"{count}, within bounds")
    except SchemaUnusable as exc:
        return Outcome(error=f"arguments_schema: {exc}")
