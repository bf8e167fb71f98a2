"""core.validation: pydantic's errors phrased as `field: what is wrong, got …`, without a database."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from core.validation import SHOWN_MAX_CHARS, Expected, problems


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    items: Annotated[list[Any], Expected("a list of items")]
    flag: bool = False
    count: Annotated[int, Field(ge=1)] = 1
    ratio: float = 0.5
    names: list[str] = []
    mode: Literal["fast", "slow"] = "fast"


def messages(payload: object, **kwargs: Any) -> list[str]:
    with pytest.raises(ValidationError) as error:
        Body.model_validate(payload)
    return problems(error.value, Body, root="body", **kwargs)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, ["items: a list of items is required"]),
        ({"items": "x"}, ["items: expected a list of items, got 'x'"]),
        ({"items": [], "flag": "yes"}, ["flag: expected true or false, got 'yes'"]),
        ({"items": [], "flag": 1}, ["flag: expected true or false, got 1"]),
        ({"items": [], "count": 1.5}, ["count: expected a whole number, got 1.5"]),
        ({"items": [], "count": True}, ["count: expected a whole number, got True"]),
        ({"items": [], "count": 0}, ["count: expected a number of at least 1, got 0"]),
        ({"items": [], "ratio": "0.5"}, ["ratio: expected a number, got '0.5'"]),
        ({"items": [], "names": ["a", 2]}, ["names[1]: expected a string, got 2"]),
        ({"items": [], "mode": "medium"}, ["mode: expected 'fast' or 'slow', got 'medium'"]),
        ([1, 2], ["body: expected a JSON object, got list"]),
    ],
)
def test_each_problem_names_the_field_what_it_takes_and_what_came(payload, expected):
    assert messages(payload) == expected


def test_unknown_keys_come_first_in_the_callers_words_then_the_fields_in_order():
    assert messages({"itemz": [], "flag": "no", "count": "1"}, unknown="unknown key {key!r} (keys: {keys})") == [
        "unknown key 'itemz' (keys: items, flag, count, ratio, names, mode)",
        "items: a list of items is required",
        "flag: expected true or false, got 'no'",
        "count: expected a whole number, got '1'",
    ]


def test_a_field_with_its_own_words_gets_one_message_for_any_problem_inside_it():
    class Names(BaseModel):
        model_config = ConfigDict(strict=True)
        names: Annotated[list[str], Expected("a list of names")]

    with pytest.raises(ValidationError) as error:
        Names.model_validate({"names": ["a", 1, 2]})
    assert problems(error.value, Names, root="body") == ["names: expected a list of names"]


def test_a_long_value_is_shown_cut_short():
    (message,) = messages({"items": "x" * 500})
    assert message.startswith("items: expected a list of items, got 'xxx") and message.endswith("…")
    assert len(message) == len("items: expected a list of items, got ") + SHOWN_MAX_CHARS


class Small(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["small"]
    size: Annotated[int, Expected("a size in bytes")]


class Big(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    kind: Literal["big"]
    low: int = 0
    high: int = 10

    @model_validator(mode="after")
    def _ordered(self) -> Big:
        if self.low > self.high:
            raise ValueError(f"low: {self.low} is above high {self.high}")
        return self


TAGGED = TypeAdapter(Annotated[Small | Big, Field(discriminator="kind")])
BY_KIND = {"small": Small, "big": Big}


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"kind": "huge"}, ["kind: expected one of small, big, got 'huge'"]),
        ({}, ["kind: expected one of small, big, got None"]),
        ("big", ["thing: expected a JSON object, got str"]),
        ({"kind": "small"}, ["size: a size in bytes is required"]),
        ({"kind": "small", "size": 1, "low": 2}, ["low: not a setting of a small thing (settings: kind, size)"]),
        ({"kind": "big", "low": 5, "high": 1}, ["low: 5 is above high 1"]),
    ],
)
def test_a_union_tagged_by_a_field_names_the_tags_and_drops_the_tag_from_each_field(payload, expected):
    with pytest.raises(ValidationError) as error:
        TAGGED.validate_python(payload)
    unknown = "{key}: not a setting of a {tag} thing (settings: {keys})"
    assert problems(error.value, BY_KIND, root="thing", unknown=unknown) == expected
