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

import json
import re
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
from judges.providers import ConfigError, Outcome, TraceInput, tool_calls
from judges.providers.schemas import SchemaUnusable, checked_schema, first_error
from judges.providers.tool_calls import TOOL_CHECK_MODELS, ToolCallCountCheck, ToolCalledCheck, ToolNotCalledCheck

_PATH_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[\"([^\"]*)\"\]")
_MISSING = object()


def _path_steps(path: str) -> list[str | int]:
    if not path.startswith("$"):
        raise ValueError(f"must start with $, got {path!r}")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _PATH_STEP.match(path, position)
        if match is None:
            raise ValueError(f"cannot read {path[position:]!r} at character {position + 1} of {path!r}")
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        position = match.end()
    return steps


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


def _lookup(value: Any, steps: list[str | int]) -> Any:
    for step in steps:
        in_list = isinstance(step, int) and isinstance(value, list) and step < len(value)
        in_object = isinstance(step, str) and isinstance(value, dict) and step in value
        if not (in_list or in_object):
            return _MISSING
        value = value[step]
    return value


def judge(config: dict[str, Any], trace: TraceInput) -> Outcome:
    """Apply a validated config to one trace."""
    check, target = config["check"], config["target"]
    if target == tool_calls.TARGET:
        return tool_calls.judge(config, trace.messages)
    text = trace.output if target == "output" else trace.input
    where = target
    value: Any = text
    needs_json = check in ("json", "json_schema") or "path" in config
    if needs_json:
        try:
            value = json.loads(text)
        except ValueError as exc:
            return Outcome(verdict="fail", reasoning=f"{target} is not valid JSON ({exc})")
        if "path" in config:
            where = f"{target} {config['path']}"
            value = _lookup(value, parse_path(config["path"]))
            if value is _MISSING:
                return Outcome(verdict="fail", reasoning=f"{where} does not exist")
    if check == "json":
        return Outcome(verdict="pass", reasoning=f"{where} is valid JSON")
    if check == "json_schema":
        try:
            problem = first_error(config["schema"], value)
        except SchemaUnusable as exc:
            return Outcome(error=f"schema: {exc}")
        if problem is None:
            return Outcome(verdict="pass", reasoning=f"{where} matches the schema")
        return Outcome(verdict="fail", reasoning=f"{where} breaks the schema {problem}")
    subject = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if check == "regex":
        try:
            found = user_regex.search(config["pattern"], subject, ignore_case=config["ignore_case"])
        except user_regex.RegexTimeout as exc:
            # Catastrophic backtracking on this text: an error for this trace, neither a pass nor a hang.
            return Outcome(error=f"{where}: {exc}")
        wanted = config["must_match"]
        verb = "matches" if found else "does not match"
        need = "required" if wanted else "forbidden"
        return Outcome(
            verdict="pass" if found == wanted else "fail", reasoning=f"{where} {verb} /{config['pattern']}/ ({need})"
        )
    if check == "contains":
        needle, haystack = config["value"], subject
        if config["ignore_case"]:
            needle, haystack = needle.casefold(), haystack.casefold()
        found = needle in haystack
        wanted = config["must_contain"]
        verb = "contains" if found else "does not contain"
        need = "required" if wanted else "forbidden"
        return Outcome(
            verdict="pass" if found == wanted else "fail", reasoning=f"{where} {verb} {config['value']!r} ({need})"
        )
    length = len(subject)
    low, high = config.get("min_chars"), config.get("max_chars")
    if low is not None and length < low:
        return Outcome(verdict="fail", reasoning=f"{where} has {length} characters, fewer than {low}")
    if high is not None and length > high:
        return Outcome(verdict="fail", reasoning=f"{where} has {length} characters, more than {high}")
    return Outcome(verdict="pass", reasoning=f"{where} has {length} characters, within bounds")
