"""Assertion judges: config validation and each check, without a database."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from judges.providers import ConfigError, TraceInput
from judges.providers.assertion import judge, parse_path, validate_config

ALL_CHECKS = "regex, contains, json, json_schema, length, tool_called, tool_not_called, tool_call_count"


def run(config: dict, output: str = "", input: str = "") -> tuple[str, str]:
    outcome = judge(validate_config(config), TraceInput(external_id="t", input=input, output=output))
    assert outcome.error == ""
    return outcome.verdict, outcome.reasoning


def test_regex_must_and_must_not_match():
    assert run({"check": "regex", "pattern": r"\d{3}-\d{4}"}, "call 555-1234") == (
        "pass",
        r"output matches /\d{3}-\d{4}/ (required)",
    )
    assert run({"check": "regex", "pattern": r"\d{3}-\d{4}", "must_match": False}, "call 555-1234")[0] == "fail"
    assert run({"check": "regex", "pattern": "REFUND", "ignore_case": True}, "a refund")[0] == "pass"
    assert run({"check": "regex", "pattern": "refund", "target": "input"}, "x", input="my refund")[0] == "pass"


def test_contains_and_not_contains():
    assert run({"check": "contains", "value": "Sorry"}, "sorry!") == (
        "fail",
        "output does not contain 'Sorry' (required)",
    )
    assert run({"check": "contains", "value": "Sorry", "ignore_case": True}, "sorry!")[0] == "pass"
    assert run({"check": "contains", "value": "as an AI", "must_contain": False}, "As an AI model")[0] == "pass"


def test_json_and_json_path():
    assert run({"check": "json"}, '{"a": 1}')[0] == "pass"
    verdict, reasoning = run({"check": "json"}, "{nope")
    assert verdict == "fail" and reasoning.startswith("output is not valid JSON")
    answer = '{"answer": {"items": [{"name": "Fee waiver"}]}, "odd key": "x"}'
    assert run({"check": "regex", "pattern": "^Fee", "path": "$.answer.items[0].name"}, answer)[0] == "pass"
    assert run({"check": "contains", "value": "x", "path": '$["odd key"]'}, answer)[0] == "pass"
    assert run({"check": "json", "path": "$.answer.items[3]"}, answer) == (
        "fail",
        "output $.answer.items[3] does not exist",
    )
    # Non-string values are checked as their JSON text.
    assert run({"check": "length", "max_chars": 5, "path": "$.answer"}, answer)[0] == "fail"


def test_json_schema_names_where_the_output_breaks_it():
    schema = {"type": "object", "required": ["verdict"], "properties": {"verdict": {"enum": ["pass", "fail"]}}}
    assert run({"check": "json_schema", "schema": schema}, '{"verdict": "pass"}')[0] == "pass"
    verdict, reasoning = run({"check": "json_schema", "schema": schema}, '{"verdict": "maybe"}')
    assert verdict == "fail"
    assert reasoning.startswith("output breaks the schema at ['verdict']: 'maybe' is not one of")
    assert run({"check": "json_schema", "schema": schema}, "[]")[1].startswith(
        "output breaks the schema at the top level"
    )


def test_length_bounds():
    assert run({"check": "length", "min_chars": 3, "max_chars": 5}, "abcd") == (
        "pass",
        "output has 4 characters, within bounds",
    )
    assert run({"check": "length", "min_chars": 3}, "ab")[1] == "output has 2 characters, fewer than 3"
    assert run({"check": "length", "max_chars": 1}, "é🙂")[1] == "output has 2 characters, more than 1"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "config: expected a JSON object"),
        ({"check": "vibes"}, "check: expected one of regex, contains, json, json_schema, length"),
        ({"check": "regex"}, "pattern: a regular expression is required"),
        ({"check": "regex", "pattern": "("}, "pattern: not a valid regular expression"),
        ({"check": "regex", "pattern": "x", "must_match": "yes"}, "must_match: expected true or false"),
        ({"check": "regex", "pattern": "x", "schema": {}}, "schema: not a setting of a regex check"),
        ({"check": "contains"}, "value: the text to look for is required"),
        ({"check": "json_schema", "schema": {"type": "nonsense"}}, "schema: not a valid JSON Schema"),
        ({"check": "length"}, "min_chars / max_chars: give at least one bound"),
        ({"check": "length", "min_chars": -1}, "min_chars: expected a non-negative whole number"),
        ({"check": "length", "min_chars": 5, "max_chars": 2}, "min_chars: 5 is above max_chars 2"),
        ({"check": "json", "target": "metadata"}, "target: expected output or input"),
        ({"check": "json", "path": "answer"}, "path: must start with $"),
        ({"check": "json", "path": "$.a..b"}, "path: cannot read '..b' at character 4"),
        ({}, f"check: expected one of {ALL_CHECKS}, got None"),
        ({"check": 3}, f"check: expected one of {ALL_CHECKS}, got 3"),
        ({"check": "json", "path": 5}, "path: expected a string like $.answer, got 5"),
        ({"check": "contains", "value": ""}, "value: expected the text to look for, got ''"),
        ({"check": "contains", "value": "x", "ignore_case": "no"}, "ignore_case: expected true or false, got 'no'"),
        ({"check": "json_schema"}, "schema: a JSON Schema object is required"),
        ({"check": "json_schema", "schema": []}, "schema: not a valid JSON Schema: [] is not of type"),
        ({"check": "length", "max_chars": True}, "max_chars: expected a non-negative whole number, got True"),
        ({"check": "length", "max_chars": 1.5}, "max_chars: expected a non-negative whole number, got 1.5"),
    ],
)
def test_bad_configs_name_the_key(config, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


def test_path_parsing():
    assert parse_path("$") == []
    assert parse_path('$.a[2]["b c"].d_e-f') == ["a", 2, "b c", "d_e-f"]


def test_every_problem_of_a_config_is_named_at_once_unknown_keys_first():
    config = {"check": "regex", "pattern": "(", "must_match": "yes", "colour": "red", "target": "metadata"}
    with pytest.raises(ConfigError) as error:
        validate_config(config)
    assert str(error.value).split("; ") == [
        "colour: not a setting of a regex check (settings: check, target, path, ignore_case, pattern, must_match)",
        "target: expected output or input, got 'metadata'",
        "pattern: not a valid regular expression: missing ), unterminated subpattern at position 0",
        "must_match: expected true or false, got 'yes'",
    ]


@pytest.mark.parametrize(
    ("config", "cleaned"),
    [
        (
            {"check": "regex", "pattern": "x"},
            {"check": "regex", "target": "output", "ignore_case": False, "pattern": "x", "must_match": True},
        ),
        (
            {"check": "contains", "value": "x", "path": "$.a", "target": "input", "ignore_case": True},
            {
                "check": "contains",
                "target": "input",
                "path": "$.a",
                "value": "x",
                "must_contain": True,
                "ignore_case": True,
            },
        ),
        ({"check": "json"}, {"check": "json", "target": "output"}),
        ({"check": "json_schema", "schema": True}, {"check": "json_schema", "target": "output", "schema": True}),
        (
            {"check": "length", "min_chars": None, "max_chars": 9},
            {"check": "length", "target": "output", "max_chars": 9},
        ),
        ({"check": "json", "path": None}, {"check": "json", "target": "output"}),
    ],
)
def test_a_valid_config_comes_back_with_defaults_filled_in_and_absent_settings_left_out(config, cleaned):
    assert validate_config(config) == cleaned
    assert validate_config(cleaned) == cleaned  # what is stored validates to itself


def test_the_assertion_provider_imports_no_django():
    # Providers never touch Django (judges/providers/__init__.py): checks that run anywhere, guardrails included.
    code = (
        "import sys, judges.providers.assertion; print(sorted(m for m in sys.modules if m.split('.')[0] == 'django'))"
    )
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=root, check=True)
    assert result.stdout.strip() == "[]"
