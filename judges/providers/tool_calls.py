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

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from core import user_regex
from core.validation import Expected, problems
from judges.providers import Outcome, checks
from judges.providers.schemas import checked_schema

TARGET = "tool_calls"


# Reading the calls, like judging them, is judges.providers.checks' (the one implementation, exported with guardrails).
ToolCall = checks.ToolCall
read_tool_calls = checks.read_tool_calls


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


def judge(config: dict[str, Any], messages: Any) -> Outcome:
    """Apply a validated tool check to a trace's messages."""
    result = checks.Check(config).judge(messages=messages, regex_seconds=user_regex.timeout_seconds())
    return Outcome(verdict=result.verdict, reasoning=result.reasoning, error=result.error)
