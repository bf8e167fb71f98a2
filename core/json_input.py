"""JSON sent by users, bounded in depth: the one place the nesting limit is defined and checked.

Python's parser recurses once per level and raises RecursionError (a 500) near a thousand levels; code that walks
a parsed value (schemas, validators, templates) recurses too. No honest trace, config or suite body nests deeply,
so every parse of user JSON goes through `json_loads` or checks its parsed value with `json_depth_check`, and a
value nested deeper than EVALSTUDIO_MAX_JSON_DEPTH (default 64) is a bad input with a message naming where.

No Django import at module level: Django-free modules (trace parsing, judge providers) use it too. The limit is
read from the settings when Django is configured, else the default.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

DEFAULT_MAX_JSON_DEPTH = 64


class JsonTooDeep(ValueError):
    """A JSON value nested deeper than the limit; the message names where."""


def max_json_depth() -> int:
    """EVALSTUDIO_MAX_JSON_DEPTH when Django's settings are configured, else the default."""
    try:
        from django.conf import settings

        if settings.configured:
            return int(getattr(settings, "EVALSTUDIO_MAX_JSON_DEPTH", DEFAULT_MAX_JSON_DEPTH))
    except ImportError:  # pragma: no cover - Django is always installed here; the module stays usable without it
        pass
    return DEFAULT_MAX_JSON_DEPTH


def too_deep_message(where: str, limit: int) -> str:
    return f"{where + ': ' if where else ''}nested deeper than {limit} levels"


def _exceeds(value: Any, limit: int) -> bool:
    """Whether `value` has more than `limit` levels of lists/objects (a scalar is level 0, `[]` level 1).

    An explicit stack, never recursion: the check must not itself fail on the input it guards against."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def json_depth_check(value: Any, *, where: str = "", limit: int | None = None) -> None:
    """Raise JsonTooDeep when `value` nests deeper than the limit. In an object or a list, the message names the
    first member that does (`metadata: nested deeper than 64 levels`, `candidates[2]: ...`), prefixed by `where`."""
    limit = max_json_depth() if limit is None else limit
    if not isinstance(value, dict | list) or not _exceeds(value, limit):
        return
    members = value.items() if isinstance(value, dict) else enumerate(value)
    for key, child in members:
        if isinstance(child, dict | list) and _exceeds(child, limit - 1):
            name = f"[{key}]" if isinstance(key, int) else str(key)
            joined = f"{where}{name}" if isinstance(key, int) else (f"{where}.{name}" if where else name)
            raise JsonTooDeep(too_deep_message(joined, limit))
    raise JsonTooDeep(too_deep_message(where, limit))  # pragma: no cover - some member is always the deep one


def json_loads(
    text: str | bytes, *, where: str = "", limit: int | None = None, parse: Callable[[str], Any] = json.loads
) -> Any:
    """`parse(text)` (json.loads unless given) with the depth limit: JsonTooDeep when the parser itself cannot go that
    deep (RecursionError) or the value nests deeper than the limit; the parser's ValueError otherwise."""
    limit = max_json_depth() if limit is None else limit
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        value = parse(text)
    except RecursionError:
        raise JsonTooDeep(too_deep_message(where, limit)) from None
    json_depth_check(value, where=where, limit=limit)
    return value


class BodyRefused(ValueError):
    """A request body that cannot be read as JSON: the HTTP status to answer and a message naming the problem."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def read_json_body(request: Any, *, limit: int, parse: Callable[[str], Any] = json.loads) -> Any:
    """The JSON body of a request (a Django HttpRequest) sent as `application/json`, read to at most `limit` bytes
    (one byte past it: a body without, or with a lying, Content-Length is caught too) and bounded in depth. Raises
    BodyRefused: 415 for another content type, 413 over the limit, 400 for bytes that are not UTF-8 or not JSON."""
    content_type = (request.content_type or "").lower()
    if content_type != "application/json":
        raise BodyRefused(415, f"Content-Type {content_type or 'missing'!r}: send application/json")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise BodyRefused(413, f"The body is over the limit of {limit:,} bytes")
    try:
        return json_loads(body, parse=parse)
    except JsonTooDeep as exc:
        raise BodyRefused(400, f"The body is {exc}") from None
    except UnicodeDecodeError as exc:
        raise BodyRefused(400, f"The body is not valid UTF-8 (byte {exc.start + 1})") from None
    except ValueError as exc:
        raise BodyRefused(400, f"Malformed JSON: {exc}") from None
