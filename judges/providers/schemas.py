"""JSON Schemas inside judge configs (an assertion's `schema`, a tool check's `arguments_schema`). No Django here.

A schema is checked when the config is validated, and applied with a registry that can retrieve nothing: left to
itself, jsonschema fetches any remote `$ref` over the network, from the server or the worker, each time a trace is
judged — a config could make the server call any address, and a verdict could change with a remote file. Only refs
inside the schema itself (`#/$defs/…`, `#anchor`) are allowed; a remote one is refused when the config is validated,
naming it and where it is, and one that reaches a run anyway (a config stored before this rule) is an error of that
judgment, never a fetch. The schema's own regular expressions (`pattern`, `patternProperties`) are the user's too:
they run with the time limit of `core.user_regex`, and one that takes too long is an error of that judgment.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
from jsonschema import validators
from jsonschema.exceptions import ValidationError
from jsonschema.validators import Draft202012Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT202012

from core import user_regex

# Keywords whose values are data, not subschemas: a "$ref" key inside them is not a reference.
_DATA_KEYWORDS = frozenset({"const", "enum", "examples", "default"})
_REF_KEYWORDS = ("$ref", "$dynamicRef")
_ROOT = "urn:evalstudio:schema"


def _retrieve_nothing(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)


# Nothing but the schema itself (jsonschema adds the standard meta-schemas, which it holds locally).
LOCAL_ONLY = Registry(retrieve=_retrieve_nothing)  # type: ignore[call-arg]


class SchemaUnusable(ValueError):
    """The schema cannot be applied to this value: the judgment is an error, neither a pass nor a fail."""


class SchemaRefError(SchemaUnusable):
    """A schema's $ref points outside it, or to nothing in it."""


class SchemaPatternTimeout(SchemaUnusable):
    """One of the schema's regular expressions took longer than the limit on this value."""


def _matches(pattern: str, text: str) -> bool:
    try:
        return user_regex.search(pattern, text)
    except user_regex.RegexTimeout as exc:
        raise SchemaPatternTimeout(str(exc)) from None


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: dict[str, Any], instance: Any, schema: Any) -> Iterator[Any]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


# Draft 2020-12 with the two keywords that run a user's regular expression replaced by time-limited ones.
_LimitedValidator = validators.extend(
    Draft202012Validator, {"pattern": _pattern, "patternProperties": _pattern_properties}
)


def _refs(node: Any, where: str, inside_id: bool) -> Iterator[tuple[str, str, str, bool]]:
    """(keyword, ref, where, inside a nested $id) for every reference in the schema, in document order."""
    if isinstance(node, dict):
        nested = inside_id or (bool(where) and isinstance(node.get("$id"), str))
        for keyword in _REF_KEYWORDS:
            if isinstance(node.get(keyword), str):
                yield keyword, node[keyword], where, nested
        for key, value in node.items():
            if key not in _DATA_KEYWORDS:
                yield from _refs(value, f"{where}.{key}" if where else str(key), nested)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _refs(value, f"{where}[{index}]", inside_id)


def checked_schema(schema: Any) -> Any:
    """The schema, when it is a valid JSON Schema whose refs all point inside it. Raises ValueError saying what
    is wrong and where (a validator's message: the field's name is put in front)."""
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"not a valid JSON Schema: {exc.message}") from None
    resolver = Registry().with_resource(_ROOT, DRAFT202012.create_resource(schema)).resolver(_ROOT)
    for keyword, ref, where, nested in _refs(schema, "", False):
        at = where or "the top level"
        if not ref.startswith("#"):
            raise SchemaRefError(
                f"{keyword} {ref!r} at {at} is not inside the schema: only local refs (like '#/$defs/name') are "
                "allowed, and nothing is fetched; copy what it names into $defs"
            )
        if nested:
            continue  # relative to a nested $id: resolved (locally, or not at all) when the schema is applied
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise SchemaRefError(f"{keyword} {ref!r} at {at} points to nothing in the schema") from None
    return schema


def validator(schema: Any) -> Draft202012Validator:
    """A validator for a checked schema that never retrieves anything and runs its patterns with a time limit."""
    return _LimitedValidator(schema, registry=LOCAL_ONLY)


def first_error(schema: Any, value: Any) -> str | None:
    """Why `value` breaks the schema ("at ['card_id']: 'x' does not match '^a'"), or None when it is valid.
    Raises SchemaRefError when the schema refers to something that is not inside it, SchemaPatternTimeout when one
    of its patterns takes longer than the limit."""
    try:
        error = jsonschema.exceptions.best_match(validator(schema).iter_errors(value))
    except Unresolvable as exc:
        raise SchemaRefError(
            f"the schema refers to {getattr(exc, 'ref', '') or exc!s}, which is not inside it; nothing is fetched"
        ) from None
    if error is None:
        return None
    location = "".join(f"[{p!r}]" for p in error.absolute_path) or "the top level"
    return f"at {location}: {error.message}"
