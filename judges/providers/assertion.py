"""Assertion judges: the cheapest rung of the ladder, deterministic checks on the output (or on a JSON path in it).

Config (`check` picks the kind; `target` is "output" by default or "input"; `path` like `$.answer.items[0]` looks
inside the target parsed as JSON):
- `{"check": "regex", "pattern": "\\d{3}-\\d{4}", "must_match": true, "ignore_case": false}`
- `{"check": "contains", "value": "refund", "must_contain": true, "ignore_case": true}`
- `{"check": "json"}` — the target parses as JSON (and the path exists)
- `{"check": "json_schema", "schema": {...}}` — the target is JSON valid against the schema
- `{"check": "length", "min_chars": 20, "max_chars": 1200}`

A check never errors on a trace: content that is not JSON where JSON is needed is a fail, with the reason.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
from jsonschema.validators import Draft202012Validator

from judges.providers import ConfigError, Outcome, TraceInput

CHECKS = ("regex", "contains", "json", "json_schema", "length")
TARGETS = ("output", "input")
_KEYS = {
    "regex": {"pattern", "must_match", "ignore_case"},
    "contains": {"value", "must_contain", "ignore_case"},
    "json": set(),
    "json_schema": {"schema"},
    "length": {"min_chars", "max_chars"},
}
_PATH_STEP = re.compile(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\[\"([^\"]*)\"\]")
_MISSING = object()


def parse_path(path: str) -> list[str | int]:
    """`$.a.b[0]["odd key"]` → ["a", "b", 0, "odd key"]. Raises ConfigError."""
    if not path.startswith("$"):
        raise ConfigError(f"path: must start with $, got {path!r}")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _PATH_STEP.match(path, position)
        if match is None:
            raise ConfigError(f"path: cannot read {path[position:]!r} at character {position + 1} of {path!r}")
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name if name is not None else quoted))
        position = match.end()
    return steps


def _boolean(config: dict[str, Any], key: str, default: bool) -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    return value


def validate_config(config: object) -> dict[str, Any]:
    """The config with defaults filled in. Raises ConfigError naming the key at fault."""
    if not isinstance(config, dict):
        raise ConfigError(f"config: expected a JSON object, got {type(config).__name__}")
    check = config.get("check")
    if check not in CHECKS:
        raise ConfigError(f"check: expected one of {', '.join(CHECKS)}, got {check!r}")
    allowed = _KEYS[check] | {"check", "target", "path"}
    unknown = sorted(set(config) - allowed)
    if unknown:
        raise ConfigError(f"{unknown[0]}: not a setting of a {check} check (settings: {', '.join(sorted(allowed))})")
    target = config.get("target", "output")
    if target not in TARGETS:
        raise ConfigError(f"target: expected output or input, got {target!r}")
    cleaned: dict[str, Any] = {"check": check, "target": target}
    if "path" in config:
        if not isinstance(config["path"], str):
            raise ConfigError(f"path: expected a string like $.answer, got {config['path']!r}")
        parse_path(config["path"])
        cleaned["path"] = config["path"]
    if check == "regex":
        pattern = config.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise ConfigError("pattern: a regular expression is required")
        cleaned["ignore_case"] = _boolean(config, "ignore_case", False)
        try:
            re.compile(pattern, re.IGNORECASE if cleaned["ignore_case"] else 0)
        except re.error as exc:
            raise ConfigError(f"pattern: not a valid regular expression: {exc}") from None
        cleaned["pattern"] = pattern
        cleaned["must_match"] = _boolean(config, "must_match", True)
    elif check == "contains":
        value = config.get("value")
        if not isinstance(value, str) or not value:
            raise ConfigError("value: the text to look for is required")
        cleaned.update(
            value=value,
            must_contain=_boolean(config, "must_contain", True),
            ignore_case=_boolean(config, "ignore_case", False),
        )
    elif check == "json_schema":
        schema = config.get("schema")
        if not isinstance(schema, dict | bool):
            raise ConfigError("schema: a JSON Schema object is required")
        try:
            Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"schema: not a valid JSON Schema: {exc.message}") from None
        cleaned["schema"] = schema
    elif check == "length":
        bounds = {key: config.get(key) for key in ("min_chars", "max_chars") if config.get(key) is not None}
        if not bounds:
            raise ConfigError("min_chars / max_chars: give at least one bound")
        for key, value in bounds.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{key}: expected a non-negative whole number, got {value!r}")
        if len(bounds) == 2 and bounds["min_chars"] > bounds["max_chars"]:
            raise ConfigError(f"min_chars: {bounds['min_chars']} is above max_chars {bounds['max_chars']}")
        cleaned.update(bounds)
    return cleaned


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
        error = jsonschema.exceptions.best_match(Draft202012Validator(config["schema"]).iter_errors(value))
        if error is None:
            return Outcome(verdict="pass", reasoning=f"{where} matches the schema")
        location = "".join(f"[{p!r}]" for p in error.absolute_path) or "the top level"
        return Outcome(verdict="fail", reasoning=f"{where} breaks the schema at {location}: {error.message}")
    subject = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if check == "regex":
        flags = re.IGNORECASE if config["ignore_case"] else 0
        found = re.search(config["pattern"], subject, flags) is not None
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
