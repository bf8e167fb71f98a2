"""Pydantic's validation errors in the house's words: one `field: what is wrong, got …` line per problem.

Schemas (pydantic models) check the types, ranges and unknown keys; `problems` only phrases their errors the way
every other message of EvalStudio reads (`trial: expected an integer, got "two"`): the field first, the value in
JSON's terms (true or false, a whole number, a JSON object), then what was sent. A field can say in words what it
takes with `Expected` in its annotation; a validator raises ValueError with a message that leaves out the field's
name (it is put in front). No Django here: Django-free modules (the judge providers) use it too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo


@dataclass(frozen=True)
class Expected:
    """`Annotated[str, Expected("a regular expression")]`: what the field takes, in the words of every message
    about it ("pattern: a regular expression is required", "pattern: expected a regular expression, got 5")."""

    what: str


# What each kind of value is called in a message, by pydantic's error type.
TYPE_WORDS = {
    "bool_type": "true or false",
    "string_type": "a string",
    "int_type": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "list_type": "a list",
    "dict_type": "a JSON object",
    "model_type": "a JSON object",
    "model_attributes_type": "a JSON object",
    "literal_error": "{expected}",
    "greater_than": "a number above {gt}",
    "greater_than_equal": "a number of at least {ge}",
    "less_than": "a number below {lt}",
    "less_than_equal": "a number of at most {le}",
    "string_too_short": "at least {min_length} characters",
    "string_too_long": "at most {max_length} characters",
    "too_short": "at least {min_length} items",
    "too_long": "at most {max_length} items",
}
TAG_ERRORS = frozenset({"union_tag_invalid", "union_tag_not_found"})
SHOWN_MAX_CHARS = 60  # of a value echoed back: enough to recognise it, never a whole pasted document


def problems(
    error: ValidationError,
    schema: type[BaseModel] | Mapping[str, type[BaseModel]],
    *,
    root: str,
    unknown: str = "{key}: unknown key (keys: {keys})",
) -> list[str]:
    """One message per problem in `error`, unknown keys first (a misspelt key explains the missing one that
    follows), then in the order of the fields.

    `schema` is the model that was validated or, for a union tagged by one of its fields (`check`), the models by
    tag. `root` names the value as a whole in a problem with all of it (`config: expected a JSON object, got list`).
    `unknown` phrases an unknown key with `{key}`, `{keys}` (the known ones) and `{tag}`.
    """
    messages: list[str] = []
    for detail in sorted(error.errors(), key=lambda d: d["type"] != "extra_forbidden"):
        message = _message(detail, schema, root=root, unknown=unknown)
        if message not in messages:
            messages.append(message)
    return messages


def _message(
    detail: Mapping[str, Any], schema: type[BaseModel] | Mapping[str, type[BaseModel]], *, root: str, unknown: str
) -> str:
    kind, loc, ctx = detail["type"], tuple(detail["loc"]), detail.get("ctx", {})
    if kind in TAG_ERRORS:
        field = str(ctx.get("discriminator", "")).strip("'\"")
        value = detail["input"].get(field) if isinstance(detail["input"], dict) else None
        # A missing tag's error lists no tags; the models by tag are the list.
        tags = ", ".join(schema) if isinstance(schema, Mapping) else str(ctx.get("expected_tags", "")).replace("'", "")
        return f"{field}: expected one of {tags}, got {_shown(value)}"
    tag = ""
    if isinstance(schema, Mapping):
        tag, loc = (str(loc[0]), loc[1:]) if loc else ("", loc)
        model = schema.get(tag)
    else:
        model = schema
    fields = _fields(model)
    where = _where(loc)
    if kind == "extra_forbidden":
        return unknown.format(key=where, keys=", ".join(fields), tag=tag)
    if kind == "value_error":
        # A validator's own words; one about several fields (a model validator) names them itself.
        text = str(ctx["error"])
        return f"{where}: {text}" if where else text
    field = fields.get(loc[0]) if loc and isinstance(loc[0], str) else None
    expected = next((m.what for m in field.metadata if isinstance(m, Expected)), None) if field else None
    if kind == "missing":
        return f"{where}: {expected or 'a value'} is required"
    if expected is not None:
        # The field's own words stand for any problem inside it too (an item of a list): one message per field.
        got = f", got {_shown(detail['input'])}" if len(loc) == 1 else ""
        return f"{loc[0]}: expected {expected}{got}"
    words = TYPE_WORDS.get(kind)
    if words is None:
        return f"{where or root}: {detail['msg']}"  # pydantic's words where the house has none
    got = _shown(detail["input"]) if loc else type(detail["input"]).__name__
    return f"{where or root}: expected {words.format(**ctx)}, got {got}"


def _fields(model: type[BaseModel] | None) -> dict[str, FieldInfo]:
    """The model's fields by the key a payload uses for each (its alias, if it has one), in their order."""
    if model is None:
        return {}
    return {(info.alias or name): info for name, info in model.model_fields.items()}


def _where(loc: tuple[Any, ...]) -> str:
    """`("criteria", 2)` → `criteria[2]`; `("a", "b")` → `a.b`."""
    where = ""
    for step in loc:
        where += f"[{step}]" if isinstance(step, int) else (f".{step}" if where else str(step))
    return where


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= SHOWN_MAX_CHARS else text[: SHOWN_MAX_CHARS - 1] + "…"


def nul_message(where: str) -> str:
    """The one message for a NUL character (U+0000), which PostgreSQL cannot store in text."""
    return f"{where}: contains a NUL character (\\u0000), which is not allowed"
