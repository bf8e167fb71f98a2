"""Assertion judges: the cheapest rung of the ladder, deterministic checks on the output (or on a JSON path in it),
or on the tool calls the trace made.

Config (`check` picks the kind; `target` is "output" by default or "input"; `path` like `$.answer.items[0]` looks
inside the target parsed as JSON):
- `{"check": "regex", "pattern": "\\d{3}-\\d{4}", "must_match": true, "ignore_case": false}`
- `{"check": "contains", "value": "refund", "must_contain": true, "ignore_case": true}`
- `{"check": "json"}` — the target parses as JSON (and the path exists)
- `{"check": "json_schema", "schema": {...}}` — the target is JSON valid against the schema
- `{"check": "length", "min_chars": 20, "max_chars": 1200}`
- on `"target": "tool_calls"` (the default of these checks): `tool_called`, `tool_not_called`, `tool_call_count`,
  each on a tool's name with an optional `arguments_schema`, and `tool_called` with `in_order` — see
  judges.providers.tool_calls.

A check never errors on a trace: content that is not JSON where JSON is needed is a fail, with the reason. (A JSON
Schema that refers outside itself is refused when the config is validated and never fetched: judges.providers.schemas;
one stored before that rule makes each judgment an error.)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core import user_regex
from core.validation import Expected, problems
from judges.providers import ConfigError, Outcome, TraceInput, checks, tool_calls
from judges.providers.schemas import checked_schema
from judges.providers.tool_calls import TOOL_CHECK_MODELS, ToolCallCountCheck, ToolCalledCheck, ToolNotCalledCheck


def _path_steps(path: str) -> list[str | int]:
    return checks.path_steps(path)


def parse_path(path: str) -> list[str | int]:
    """`$.a.b[0]["odd key"]` → ["a", "b", 0, "odd key"]. Raises ConfigError."""
    try:
        return _path_steps(path)
    except ValueError as exc:
        raise ConfigError(f"path: {exc}") from None


def _readable_path(path: str | None) -> str | None:
    if path is not None:
        _path_steps(path)
    return path


class _Check(BaseModel):
    """What every check has; `check` picks the kind. Strict: JSON's true is not the string "true", nor 1."""

    model_config = ConfigDict(extra="forbid", strict=True)

    check: str
    target: Annotated[Literal["output", "input"], Expected("output or input")] = "output"
    path: Annotated[str | None, Expected("a string like $.answer"), AfterValidator(_readable_path)] = None

    @field_validator("target", mode="before")
    @classmethod
    def _not_tool_calls(cls, target: Any, info: ValidationInfo) -> Any:
        if target == tool_calls.TARGET:
            raise ValueError(
                f"tool_calls is read by the tool checks ({', '.join(TOOL_CHECK_MODELS)}), "
                f"not by a {info.data.get('check', 'text')} check, which reads output or input"
            )
        return target


class RegexCheck(_Check):
    check: Literal["regex"]
    # Before `pattern`: the pattern is compiled with the flag.
    ignore_case: bool = False
    pattern: Annotated[str, Expected("a regular expression"), Field(min_length=1)]
    must_match: bool = True

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, pattern: str, info: ValidationInfo) -> str:
        try:
            user_regex.compile_check(pattern, ignore_case=bool(info.data.get("ignore_case")))
        except user_regex.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return pattern


class ContainsCheck(_Check):
    check: Literal["contains"]
    value: Annotated[str, Expected("the text to look for"), Field(min_length=1)]
    must_contain: bool = True
    ignore_case: bool = False


class JsonCheck(_Check):
    check: Literal["json"]


class JsonSchemaCheck(_Check):
    check: Literal["json_schema"]
    # Not named `schema`, which would shadow a BaseModel method; the config's key is still "schema".
    json_schema: Annotated[Any, Field(alias="schema"), Expected("a JSON Schema object"), AfterValidator(checked_schema)]


Bound = Annotated[int | None, Expected("a non-negative whole number"), Field(ge=0)]


class LengthCheck(_Check):
    check: Literal["length"]
    min_chars: Bound = None
    max_chars: Bound = None

    @model_validator(mode="after")
    def _bounded(self) -> LengthCheck:
        if self.min_chars is None and self.max_chars is None:
            raise ValueError("min_chars / max_chars: give at least one bound")
        if self.min_chars is not None and self.max_chars is not None and self.min_chars > self.max_chars:
            raise ValueError(f"min_chars: {self.min_chars} is above max_chars {self.max_chars}")
        return self


CHECK_MODELS: dict[str, type[BaseModel]] = {
    "regex": RegexCheck,
    "contains": ContainsCheck,
    "json": JsonCheck,
    "json_schema": JsonSchemaCheck,
    "length": LengthCheck,
    **TOOL_CHECK_MODELS,
}
CHECKS = tuple(CHECK_MODELS)
AssertionConfig = TypeAdapter(
    Annotated[
        RegexCheck
        | ContainsCheck
        | JsonCheck
        | JsonSchemaCheck
        | LengthCheck
        | ToolCalledCheck
        | ToolNotCalledCheck
        | ToolCallCountCheck,
        Field(discriminator="check"),
    ]
)


def validate_config(config: object) -> dict[str, Any]:
    """The config with defaults filled in. Raises ConfigError naming the key at fault (every one, `; ` between)."""
    try:
        checked = AssertionConfig.validate_python(config)
    except ValidationError as exc:
        unknown = "{key}: not a setting of a {tag} check (settings: {keys})"
        raise ConfigError("; ".join(problems(exc, CHECK_MODELS, root="config", unknown=unknown))) from None
    # Absent settings stay absent (`path`, a length bound): None is never a stored value.
    return checked.model_dump(by_alias=True, exclude_none=True)


def outcome(check: checks.Check, trace: TraceInput) -> Outcome:
    """Apply a prepared check (judges.providers.checks, where the judging is) to one trace."""
    result = check.judge(
        output=trace.output, input=trace.input, messages=trace.messages, regex_seconds=user_regex.timeout_seconds()
    )
    return Outcome(verdict=result.verdict, reasoning=result.reasoning, error=result.error)


def judge(config: dict[str, Any], trace: TraceInput) -> Outcome:
    """Apply a validated config to one trace."""
    return outcome(checks.Check(config), trace)
