"""Assertion judges: config validation and each check, without a database."""

from __future__ import annotations

import re

import pytest

from judges.providers import ConfigError, TraceInput
from judges.providers.assertion import judge, parse_path, validate_config


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
    ],
)
def test_bad_configs_name_the_key(config, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


def test_path_parsing():
    assert parse_path("$") == []
    assert parse_path('$.a[2]["b c"].d_e-f') == ["a", 2, "b c", "d_e-f"]
