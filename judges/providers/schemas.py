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
from jsonschema.validators import Draft202012Validator
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from core import user_regex

# Applying a schema is judges.providers.checks' job (the one implementation, exported with guardrails); its errors
# are these.
from judges.providers.checks import SchemaPatternTimeout, SchemaRefError, SchemaUnusable, schema_validator
from judges.providers.checks import first_error as _first_error

__all__ = ["SchemaPatternTimeout", "SchemaRefError", "SchemaUnusable", "checked_schema", "first_error", "validator"]

# Keywords whose values are data, not subschemas: a "$ref" key inside them is not a reference.
_DATA_KEYWORDS = frozenset({"const", "enum", "examples", "default"})
_REF_KEYWORDS = ("$ref", "$dynamicRef")
_ROOT = "urn:evalstudio:schema"


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
    return schema_validator(schema)


def first_error(schema: Any, value: Any) -> str | None:
    """Why `value` breaks the schema ("at ['card_id']: 'x' does not match '^a'"), or None when it is valid.
    Raises SchemaRefError when the schema refers to something that is not inside it, SchemaPatternTimeout when one
    of its patterns takes longer than the limit (EVALSTUDIO_REGEX_TIMEOUT_MS)."""
    return _first_error(schema_validator(schema), value, user_regex.timeout_seconds())
