"""The query string of the REST read routes, checked one way everywhere: a parameter the route does not take, a
page's `limit` and its `cursor` are refused with a QueryError whose message names the parameter, and the route
answers it with a 400 (`query_refused`). django-ninja would ignore an unknown parameter (a mistyped filter would
answer everything) and answer a bad number with a 422 in pydantic's words.

Paging is a keyset on the row id (ascending): a page costs the same at the millionth row as at the first, and a row
added while a client pages is never skipped or repeated. The cursor is opaque to clients (the last id, in URL-safe
base64) so that its form can change.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence

from django.http import HttpResponse

from core.api_errors import detail_response

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


class QueryError(ValueError):
    """A bad query parameter: the message names it."""


def query_refused(exc: QueryError) -> HttpResponse:
    """The 400 for a bad query parameter, in the bytes and content type of django-ninja's own `{"detail": ...}`."""
    return detail_response(400, str(exc))


def refuse_unknown(query: Mapping[str, str], known: Sequence[str], *, expected: str = "") -> None:
    """QueryError naming the first (alphabetically) parameter of `query` not in `known`. The message lists
    `expected`, by default `known` in its order as "a, b and c"."""
    unknown = sorted(set(query) - set(known))
    if not unknown:
        return
    listed = expected or (", ".join(known[:-1]) + " and " + known[-1] if len(known) > 1 else "".join(known))
    raise QueryError(f"Unknown query parameter {unknown[0]!r}; expected {listed}")


def page_limit(query: Mapping[str, str], *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """The page size in `limit`, `default` without one."""
    raw = query.get("limit")
    if raw is None or raw == "":
        return default
    # The length check first: int() of thousands of digits is slow, and past 4,300 digits a ValueError (a 500).
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or not 1 <= int(raw) <= maximum:
        raise QueryError(f"Query parameter 'limit' must be a whole number from 1 to {maximum}; got {raw[:40]!r}")
    return int(raw)


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        # An id the database can compare (bigint): anything else was not made here.
        if not text.startswith("t") or not (text[1:].isascii() and text[1:].isdigit() and len(text) < 20):
            raise ValueError
        return int(text[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise QueryError(f"Query parameter 'cursor' is not a cursor this API gave: {cursor[:40]!r}") from None


def page_after(query: Mapping[str, str]) -> int:
    """The id the page starts after: the `cursor`'s, 0 (the first page) without one."""
    cursor = query.get("cursor")
    return decode_cursor(cursor) if cursor else 0
