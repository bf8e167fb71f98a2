"""How an assertion check judges a trace: the one implementation, used in the app and exported as it is.

The assertion judges (judges.providers.assertion, judges.providers.tool_calls) validate a check's config and hand
the judging to this module; `manage.py export_guardrails` copies this file verbatim into the module it writes, so a
guardrail run by an application gives the verdict the app's judge runs gave. That is why this module imports
nothing from EvalStudio (nor Django, nor pydantic): the standard library, `jsonschema` (with its `referencing`) for
schema checks, imported only when a schema check runs, and the `regex` package when it is installed, for a time
limit on users' regular expressions (without it, Python's `re`, which has none).

`Check(config)` prepares a validated config once (compiled pattern, parsed path, schema validator) and
`check.judge(output=..., input=..., messages=..., regex_seconds=...)` answers a `Result`: a verdict ("pass" or
"fail") with its reasoning, or an error (verdict ""), which is neither. A check never raises on a trace's content.
"""

from __future__ import annotations

import contextvars
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

try:  # the time limit on users' patterns needs the `regex` package; its VERSION0 is Python's `re` syntax
    import regex as _regex_engine
except ImportError:  # pragma: no cover - the app always has it; an exported guardrail may not
    _regex_engine = None

DEFAULT_REGEX_SECONDS = 0.1
TOOL_CALLS = "tool_calls"
NAMES_SHOWN = 10  # tool names listed in a reason; a long trajectory is summarised, not pasted
_PATH_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[\"([^\"]*)\"\]")
_MISSING = object()
_UNREADABLE = object()


class Result(NamedTuple):
    """A verdict with its reasoning, or an error (verdict "")."""

    verdict: str = ""
    reasoning: str = ""
    error: str = ""


# --- users' regular expressions, with a time limit -------------------------------------------------------------------


class RegexTimeout(Exception):
    """A user's pattern took longer than the limit on one text."""

    def __init__(self, pattern: str, seconds: float) -> None:
        super().__init__(f"the regular expression /{pattern}/ took longer than {seconds:g} s and was stopped")
        self.pattern = pattern
        self.seconds = seconds


def compile_pattern(pattern: str, ignore_case: bool = False) -> Any:
    if _regex_engine is not None:
        return _regex_engine.compile(pattern, _regex_engine.VERSION0 | (_regex_engine.IGNORECASE if ignore_case else 0))
    return re.compile(pattern, re.IGNORECASE if ignore_case else 0)


def search(compiled: Any, text: str, seconds: float) -> bool:
    """Whether the compiled pattern matches somewhere in `text`; RegexTimeout after `seconds` (with `regex`)."""
    if _regex_engine is None:
        return compiled.search(text) is not None
    try:
        return compiled.search(text, timeout=seconds) is not None
    except TimeoutError:
        raise RegexTimeout(compiled.pattern, seconds) from None


# --- JSON paths ------------------------------------------------------------------------------------------------------


def path_steps(path: str) -> list[str | int]:
    """`$.a.b[0]["odd key"]` → ["a", "b", 0, "odd key"]. Raises ValueError saying where it cannot be read."""
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


def lookup(value: Any, steps: list[str | int]) -> Any:
    for step in steps:
        in_list = isinstance(step, int) and isinstance(value, list) and step < len(value)
        in_object = isinstance(step, str) and isinstance(value, dict) and step in value
        if not (in_list or in_object):
            return _MISSING
        value = value[step]
    return value


# --- JSON Schemas: nothing fetched, patterns time-limited ------------------------------------------------------------


class SchemaUnusable(ValueError):
    """The schema cannot be applied to this value: the judgment is an error, neither a pass nor a fail."""


class SchemaRefError(SchemaUnusable):
    """A schema's $ref points outside it, or to nothing in it."""


class SchemaPatternTimeout(SchemaUnusable):
    """One of the schema's regular expressions took longer than the limit on this value."""


# The time limit of the schema being applied now (its pattern keywords are called by jsonschema, not by us).
_schema_seconds: contextvars.ContextVar[float] = contextvars.ContextVar("schema_seconds", default=DEFAULT_REGEX_SECONDS)
_validator_class: Any = None
_local_only: Any = None


def _schema_matches(pattern: str, text: str) -> bool:
    try:
        return search(compile_pattern(pattern), text, _schema_seconds.get())
    except RegexTimeout as exc:
        raise SchemaPatternTimeout(str(exc)) from None


def _jsonschema() -> tuple[Any, Any]:
    """Draft 2020-12 with the two keywords that run a user's regular expression replaced by time-limited ones, and a
    registry that retrieves nothing (left to itself, jsonschema fetches a remote `$ref` over the network)."""
    global _validator_class, _local_only
    if _validator_class is None:
        from jsonschema import validators
        from jsonschema.exceptions import ValidationError
        from referencing import Registry
        from referencing.exceptions import NoSuchResource

        def pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[Any]:
            if validator.is_type(instance, "string") and not _schema_matches(pattern, instance):
                yield ValidationError(f"{instance!r} does not match {pattern!r}")

        def pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
            if not validator.is_type(instance, "object"):
                return
            for regex, subschema in patterns.items():
                for key, value in instance.items():
                    if _schema_matches(regex, key):
                        yield from validator.descend(value, subschema, path=key, schema_path=regex)

        def retrieve_nothing(uri: str) -> Any:
            raise NoSuchResource(ref=uri)

        _local_only = Registry(retrieve=retrieve_nothing)  # type: ignore[call-arg]
        _validator_class = validators.extend(
            validators.Draft202012Validator, {"pattern": pattern, "patternProperties": pattern_properties}
        )
    return _validator_class, _local_only


def schema_validator(schema: Any) -> Any:
    """A validator for a checked schema that never retrieves anything and runs its patterns with a time limit."""
    validator_class, registry = _jsonschema()
    return validator_class(schema, registry=registry)


def first_error(validator: Any, value: Any, seconds: float = DEFAULT_REGEX_SECONDS) -> str | None:
    """Why `value` breaks the validator's schema ("at ['card_id']: 'x' does not match '^a'"), or None when it is
    valid. Raises SchemaRefError when the schema refers to something outside it, SchemaPatternTimeout when one of its
    patterns takes longer than `seconds`."""
    from jsonschema.exceptions import best_match
    from referencing.exceptions import Unresolvable

    token = _schema_seconds.set(seconds)
    try:
        error = best_match(validator.iter_errors(value))
    except Unresolvable as exc:
        raise SchemaRefError(
            f"the schema refers to {getattr(exc, 'ref', '') or exc!s}, which is not inside it; nothing is fetched"
        ) from None
    finally:
        _schema_seconds.reset(token)
    if error is None:
        return None
    location = "".join(f"[{p!r}]" for p in error.absolute_path) or "the top level"
    return f"at {location}: {error.message}"


# --- tool calls ------------------------------------------------------------------------------------------------------


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


# --- the check -------------------------------------------------------------------------------------------------------


class Check:
    """A validated assertion config, prepared once: its pattern compiled, its path parsed, its schemas' validators
    built. Judging reads nothing else, so one Check serves any number of traces (and threads)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.kind: str = config["check"]
        self.target: str = config.get("target", TOOL_CALLS if self.kind.startswith("tool_") else "output")
        self.steps = path_steps(config["path"]) if "path" in config else None
        self.pattern = (
            compile_pattern(config["pattern"], config.get("ignore_case", False)) if self.kind == "regex" else None
        )
        self.validator = schema_validator(config["schema"]) if self.kind == "json_schema" else None
        self._validators: dict[int, Any] = {}
        for schema in self._tool_schemas():
            self._validators[id(schema)] = schema_validator(schema)

    def _tool_schemas(self) -> Iterator[Any]:
        if self.config.get("arguments_schema") is not None:
            yield self.config["arguments_schema"]
        for step in self.config.get("in_order") or ():
            if isinstance(step, dict) and step.get("arguments_schema") is not None:
                yield step["arguments_schema"]

    def judge(
        self,
        *,
        output: str = "",
        input: str = "",
        messages: Any = None,
        regex_seconds: float = DEFAULT_REGEX_SECONDS,
    ) -> Result:
        if self.target == TOOL_CALLS:
            try:
                return self._judge_tools(messages, regex_seconds)
            except SchemaUnusable as exc:
                return Result(error=f"arguments_schema: {exc}")
        return self._judge_text(output if self.target == "output" else input, regex_seconds)

    # text checks: output or input

    def _judge_text(self, text: str, seconds: float) -> Result:
        config, check, target = self.config, self.kind, self.target
        where = target
        value: Any = text
        if check in ("json", "json_schema") or self.steps is not None:
            try:
                value = json.loads(text)
            except ValueError as exc:
                return Result("fail", f"{target} is not valid JSON ({exc})")
            if self.steps is not None:
                where = f"{target} {config['path']}"
                value = lookup(value, self.steps)
                if value is _MISSING:
                    return Result("fail", f"{where} does not exist")
        if check == "json":
            return Result("pass", f"{where} is valid JSON")
        if check == "json_schema":
            try:
                problem = first_error(self.validator, value, seconds)
            except SchemaUnusable as exc:
                return Result(error=f"schema: {exc}")
            if problem is None:
                return Result("pass", f"{where} matches the schema")
            return Result("fail", f"{where} breaks the schema {problem}")
        subject = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        if check == "regex":
            try:
                found = search(self.pattern, subject, seconds)
            except RegexTimeout as exc:
                # Catastrophic backtracking on this text: an error for this trace, neither a pass nor a hang.
                return Result(error=f"{where}: {exc}")
            wanted = config.get("must_match", True)
            verb = "matches" if found else "does not match"
            need = "required" if wanted else "forbidden"
            return Result("pass" if found == wanted else "fail", f"{where} {verb} /{config['pattern']}/ ({need})")
        if check == "contains":
            needle, haystack = config["value"], subject
            if config.get("ignore_case", False):
                needle, haystack = needle.casefold(), haystack.casefold()
            found = needle in haystack
            wanted = config.get("must_contain", True)
            verb = "contains" if found else "does not contain"
            need = "required" if wanted else "forbidden"
            return Result("pass" if found == wanted else "fail", f"{where} {verb} {config['value']!r} ({need})")
        length = len(subject)
        low, high = config.get("min_chars"), config.get("max_chars")
        if low is not None and length < low:
            return Result("fail", f"{where} has {length} characters, fewer than {low}")
        if high is not None and length > high:
            return Result("fail", f"{where} has {length} characters, more than {high}")
        return Result("pass", f"{where} has {length} characters, within bounds")

    # tool checks: the calls in the messages

    def _matches(self, call: ToolCall, tool: str, schema: Any, seconds: float) -> tuple[bool, str]:
        """Whether the call is of `tool` with arguments matching `schema` (any arguments when None), and if it is of
        the tool but its arguments do not match, why."""
        if call.name != tool:
            return False, ""
        if schema is None:
            return True, ""
        if call.arguments is _UNREADABLE:
            return False, f"{call.where}: {call.arguments_error}"
        problem = first_error(self._validators[id(schema)], call.arguments, seconds)
        return problem is None, "" if problem is None else f"{call.where} breaks it {problem}"

    def _judge_tools(self, messages: Any, seconds: float) -> Result:
        calls = read_tool_calls(messages)
        if calls is None:
            return Result("fail", "the trace has no messages, so there are no tool calls to check")
        config, check = self.config, self.kind
        schema = config.get("arguments_schema")
        if check == "tool_called" and "in_order" in config:
            return self._in_order(calls, config["in_order"], seconds)
        tool = config["tool"]
        if check == "tool_called":
            return self._called(calls, tool, schema, seconds)
        matching = [call for call in calls if self._matches(call, tool, schema, seconds)[0]]
        if check == "tool_not_called":
            if not matching:
                return Result("pass", f"{tool} was never called{_with(schema)} ({_named(calls)})")
            where = ", ".join(call.where for call in matching[:3])
            return Result("fail", f"{tool} was called{_with(schema)} {_times(len(matching))} (forbidden): {where}")
        low, high = config.get("min_times"), config.get("max_times")
        count = f"{tool} was called{_with(schema)} {_times(len(matching))}"
        if low is not None and len(matching) < low:
            return Result("fail", f"{count}, fewer than {low}")
        if high is not None and len(matching) > high:
            return Result("fail", f"{count}, more than {high}")
        return Result("pass", f"{count}, within bounds")

    def _called(self, calls: list[ToolCall], tool: str, schema: Any, seconds: float) -> Result:
        reasons = []
        for call in calls:
            matched, reason = self._matches(call, tool, schema, seconds)
            if matched:
                return Result("pass", f"{tool} was called{_with(schema)} at {call.where}{_no_result(call)}")
            if reason:
                reasons.append(reason)
        if not reasons:
            return Result("fail", f"{tool} was never called ({_named(calls)})")
        return Result(
            "fail",
            f"{tool} was called {_times(len(reasons))}, never with arguments matching the schema: "
            + "; ".join(reasons[:3])
            + (f"; and {len(reasons) - 3} more" if len(reasons) > 3 else ""),
        )

    def _in_order(self, calls: list[ToolCall], steps: list[Any], seconds: float) -> Result:
        # Earliest match for each step in turn: if any ordered choice of calls fits, this one does.
        position, found = 0, []
        for number, raw in enumerate(steps, start=1):
            tool, schema = (raw, None) if isinstance(raw, str) else (raw["tool"], raw.get("arguments_schema"))
            match = next(
                (i for i in range(position, len(calls)) if self._matches(calls[i], tool, schema, seconds)[0]), None
            )
            if match is None:
                after = f" after {found[-1]}" if found else ""
                anywhere = any(self._matches(call, tool, schema, seconds)[0] for call in calls)
                why = " (it was called, but not in this order)" if anywhere and found else ""
                return Result(
                    "fail",
                    f"step {number} of {len(steps)}: no call of {tool}{_with(schema)}{after}{why} ({_named(calls)})",
                )
            found.append(f"{tool} at {calls[match].where}")
            position = match + 1
        return Result("pass", "called in order: " + ", then ".join(found))


# --- guardrails: several checks on one answer ------------------------------------------------------------------------


def guardrail_answer(
    guardrails: list[tuple[dict[str, Any], Check]],
    *,
    output: str,
    input: str = "",
    messages: Any = None,
    regex_seconds: float = DEFAULT_REGEX_SECONDS,
) -> dict[str, Any]:
    """Every check on one answer, as EvalStudio's `POST …/guardrails/check` answers: `allowed` is false when any
    check fails it, each failure a violation (the check's `row`, e.g. criterion, check and version, with the
    `detail`). A check that cannot decide (its pattern ran out of time) is listed under `errors` and does not block:
    a guardrail that blocked on its own failure would fail good answers."""
    violations: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for row, check in guardrails:
        result = check.judge(output=output, input=input, messages=messages, regex_seconds=regex_seconds)
        if result.error:
            errors.append({**row, "detail": result.error})
        elif result.verdict == "fail":
            violations.append({**row, "detail": result.reasoning})
    return {"allowed": not violations, "violations": violations, "errors": errors, "checks": len(guardrails)}
