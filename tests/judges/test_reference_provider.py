"""Reference judges' comparisons (judges.providers.reference): config validation and every mode, without a database."""

from __future__ import annotations

from typing import Any

import pytest

from judges.providers import ConfigError, TraceInput
from judges.providers.reference import (
    NO_REFERENCE,
    json_difference,
    normalize,
    numbers_in,
    validate_config,
)
from judges.providers.reference import judge as reference_judge


def run(config: dict[str, Any], output: str, reference: Any) -> tuple[str, str]:
    outcome = reference_judge(validate_config(config), TraceInput(external_id="t", output=output, reference=reference))
    assert outcome.error == "" and outcome.skipped == "", outcome
    return outcome.verdict, outcome.reasoning


# --- config ------------------------------------------------------------------------------------------------------


def test_config_defaults_are_filled_in_per_mode():
    assert validate_config({"mode": "exact"}) == {"mode": "exact", "strip": True}
    assert validate_config({"mode": "numeric"}) == {"mode": "numeric", "abs_tol": 0.0, "rel_tol": 0.0, "match": "last"}
    assert validate_config({"mode": "normalised"})["mode"] == "normalized"
    assert validate_config({"mode": "numeric", "abs_tol": 1})["abs_tol"] == 1.0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "mode"),
        ({"mode": "fuzzy"}, "mode"),
        ({"mode": "numeric", "abs_tol": -1}, "abs_tol"),
        ({"mode": "numeric", "rel_tol": "0.1"}, "rel_tol"),
        ({"mode": "numeric", "abs_tol": True}, "abs_tol"),
        ({"mode": "numeric", "match": "first"}, "match"),
        ({"mode": "exact", "strip": "yes"}, "strip"),
        ({"mode": "facts", "pattern": "x"}, "pattern"),
        ([], "config"),
    ],
)
def test_bad_config_names_the_key(config: Any, message: str):
    with pytest.raises(ConfigError) as caught:
        validate_config(config)
    assert str(caught.value).startswith(message), str(caught.value)


# --- skips -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["exact", "normalized", "numeric", "json", "facts"])
def test_a_trace_without_reference_is_skipped_never_passed(mode: str):
    outcome = reference_judge(validate_config({"mode": mode}), TraceInput(external_id="t", output="anything"))
    assert (outcome.verdict, outcome.error, outcome.skipped) == ("", "", NO_REFERENCE)


# --- exact and normalized ----------------------------------------------------------------------------------------


def test_exact_ignores_surrounding_whitespace_unless_told_not_to():
    assert run({"mode": "exact"}, "Paris\n", "Paris")[0] == "pass"
    assert run({"mode": "exact", "strip": False}, "Paris\n", "Paris")[0] == "fail"
    verdict, reason = run({"mode": "exact"}, "paris", "Paris")
    assert verdict == "fail" and reason == "the output 'paris' differs from the reference 'Paris'"


def test_exact_compares_a_json_reference_as_its_compact_text():
    assert run({"mode": "exact"}, "42", 42)[0] == "pass"
    assert run({"mode": "exact"}, '{"a":1}', {"a": 1})[0] == "pass"


def test_normalized_folds_case_whitespace_punctuation_and_unicode_forms():
    config = {"mode": "normalized"}
    assert run(config, "  The capital is PARIS! ", "the capital is paris")[0] == "pass"
    # NFKC: the ligature ﬁ and a full-width digit are the same text as "fi" and "1".
    assert run(config, "ﬁle １", "file 1")[0] == "pass"
    assert run(config, "«Hola», ¿qué tal?", "hola qué tal")[0] == "pass"
    assert run(config, "Paris, France", "Paris")[0] == "fail"


def test_normalized_folds_diacritics_only_when_asked():
    assert run({"mode": "normalized"}, "Crème brûlée", "creme brulee")[0] == "fail"
    assert run({"mode": "normalized", "diacritics": True}, "Crème brûlée", "creme brulee")[0] == "pass"


def test_normalized_steps_can_be_turned_off():
    assert run({"mode": "normalized", "case": False}, "PARIS", "paris")[0] == "fail"
    assert run({"mode": "normalized", "punctuation": False}, "Paris!", "Paris")[0] == "fail"
    assert normalize("a\t\n b", whitespace=False) == "a\t\n b"


# --- numeric -----------------------------------------------------------------------------------------------------


def test_numbers_are_read_as_people_write_them():
    assert numbers_in("1,234.5 units, -3, .5, 3e8, 12%, gpt4, 2-3") == [1234.5, -3.0, 0.5, 3e8, 12.0, 2.0, 3.0]
    assert numbers_in("The answer is 42.") == [42.0]
    assert numbers_in("no digits here") == []


def test_numeric_last_number_against_the_reference_with_tolerances():
    config = {"mode": "numeric"}
    assert run(config, "There are 2 types; in total 92 reactors.", 92) == (
        "pass",
        "the output's last number 92 equals the reference 92",
    )
    assert run(config, "In total 94 reactors.", "92")[0] == "fail"
    assert run({"mode": "numeric", "abs_tol": 2}, "In total 94 reactors.", 92)[0] == "pass"
    assert run({"mode": "numeric", "rel_tol": 0.01}, "3.14159", 3.14)[0] == "pass"
    assert run({"mode": "numeric", "rel_tol": 0.0001}, "3.15", 3.14)[0] == "fail"
    assert run(config, "no number at all", 7) == ("fail", "the output holds no number; the reference is 7")


def test_numeric_all_numbers_in_order():
    config = {"mode": "numeric", "match": "all"}
    assert run(config, "min 3, max 9", [3, 9])[0] == "pass"
    assert run(config, "max 9, min 3", "3 and 9") == ("fail", "number 1 of the output is 9, the reference's 3")
    assert run(config, "just 3", [3, 9]) == ("fail", "the output holds 1 numbers, the reference 2")


def test_numeric_reference_without_a_single_number_is_an_error_naming_it():
    outcome = reference_judge(
        validate_config({"mode": "numeric"}), TraceInput(external_id="t", output="5", reference="three")
    )
    assert outcome.verdict == "" and outcome.error.startswith("reference: holds no number")
    outcome = reference_judge(
        validate_config({"mode": "numeric"}), TraceInput(external_id="t", output="5", reference=[1, 2])
    )
    assert outcome.error == 'reference: holds 2 numbers; match "last" needs exactly one'
    # A boolean is not a number.
    outcome = reference_judge(
        validate_config({"mode": "numeric"}), TraceInput(external_id="t", output="1", reference=True)
    )
    assert outcome.error.startswith("reference: holds no number")


# --- json --------------------------------------------------------------------------------------------------------


def test_json_equal_ignores_key_order_and_reads_a_string_reference_as_json():
    config = {"mode": "json"}
    assert run(config, '{"b": [1, 2], "a": {"y": 1, "x": 2}}', {"a": {"x": 2, "y": 1}, "b": [1, 2]})[0] == "pass"
    assert run(config, '{"a": 1}', '{"a": 1.0}')[0] == "pass"
    assert run(config, '"plain"', "plain")[0] == "pass"


def test_json_differences_name_the_path():
    assert json_difference({"items": [1, 2, 4]}, {"items": [1, 2, 3]}) == "$.items[2]: expected 3, got 4"
    assert json_difference({"a": 1}, {"a": 1, "b": 2}) == "$: key 'b' is missing"
    assert json_difference({"a": 1, "c": 3}, {"a": 1}) == "$: unexpected key 'c'"
    assert json_difference([1], [1, 2]) == "$: expected 2 items, got 1"
    # Python's True == 1 does not hold in JSON.
    assert json_difference(True, 1) == "$: expected 1, got true"
    assert json_difference(1, True) == "$: expected true, got 1"
    assert json_difference(None, {}) == "$: expected an object, got null"


def test_json_output_that_is_not_json_fails_with_a_clear_reason():
    verdict, reason = run({"mode": "json"}, "Sure! Here you go: {", {"a": 1})
    assert verdict == "fail" and reason.startswith("the output is not valid JSON (")


def test_json_unwraps_a_code_fence_unless_told_not_to():
    fenced = '```json\n{"a": 1}\n```'
    assert run({"mode": "json"}, fenced, {"a": 1})[0] == "pass"
    assert run({"mode": "json", "strip_code_fence": False}, fenced, {"a": 1})[0] == "fail"


# --- facts -------------------------------------------------------------------------------------------------------


def test_facts_must_all_appear_and_the_reason_names_the_missing_ones():
    reference = ["92 reactors", {"regex": r"\b(?:France|French)\b"}, "EDF"]
    assert run({"mode": "facts"}, "France runs 92 reactors through edf.", reference)[0] == "pass"
    verdict, reason = run({"mode": "facts"}, "There are 94 reactors in Spain.", reference)
    assert verdict == "fail"
    assert reason == r"missing 3 of 3 facts: '92 reactors', /\b(?:France|French)\b/, 'EDF'"
    assert run({"mode": "facts", "ignore_case": False}, "France runs 92 reactors through edf.", reference) == (
        "fail",
        "missing 1 of 3 facts: 'EDF'",
    )


def test_facts_reference_may_be_a_single_string():
    assert run({"mode": "facts"}, "It is Paris.", "paris")[0] == "pass"


@pytest.mark.parametrize(
    ("reference", "error"),
    [
        ([{"regex": "("}], "reference[0].regex: not a valid regular expression"),
        (["ok", 3], "reference[1]: expected a string or"),
        ([" "], "reference[0]: an empty fact"),
        (5, "reference: expected a string or"),
    ],
)
def test_a_bad_facts_reference_is_an_error_naming_the_item(reference: Any, error: str):
    outcome = reference_judge(
        validate_config({"mode": "facts"}), TraceInput(external_id="t", output="ok", reference=reference)
    )
    assert outcome.verdict == "" and outcome.error.startswith(error), outcome.error


def test_a_catastrophic_fact_regex_is_an_error_not_a_hang():
    outcome = reference_judge(
        validate_config({"mode": "facts"}),
        TraceInput(external_id="t", output="a" * 40 + "b", reference=[{"regex": "(a|aa)+$"}]),
    )
    assert outcome.verdict == "" and outcome.error.startswith("reference[0].regex:")
