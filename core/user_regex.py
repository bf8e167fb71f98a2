"""Regular expressions written by users, run with a time limit.

A pattern such as `(a+)+$` backtracks exponentially on a text like "aaaa…b": with Python's `re` one search can hold a
worker or a web request for hours. Users' patterns (assertion regex checks) are compiled and run with the `regex`
package instead, whose matching takes a timeout: a search that takes longer than EVALSTUDIO_REGEX_TIMEOUT_MS raises
RegexTimeout, which the caller turns into an error for that one text (never a pass, never a hang).

No Django import at module level (the judge providers are Django-free); the limit is read from the settings when
Django is configured, else the default.
"""

from __future__ import annotations

import re

import regex

DEFAULT_TIMEOUT_MS = 100

error = (re.error, regex.error)


class RegexTimeout(Exception):
    """A user's pattern took longer than the limit on one text."""

    def __init__(self, pattern: str, seconds: float) -> None:
        super().__init__(f"the regular expression /{pattern}/ took longer than {seconds:g} s and was stopped")
        self.pattern = pattern
        self.seconds = seconds


def timeout_seconds() -> float:
    """EVALSTUDIO_REGEX_TIMEOUT_MS in seconds when Django's settings are configured, else the default."""
    try:
        from django.conf import settings

        if settings.configured:
            return int(getattr(settings, "EVALSTUDIO_REGEX_TIMEOUT_MS", DEFAULT_TIMEOUT_MS)) / 1000
    except ImportError:  # pragma: no cover - Django is always installed here
        pass
    return DEFAULT_TIMEOUT_MS / 1000


def _flags(ignore_case: bool) -> int:
    # VERSION0: the same syntax and semantics as Python's `re`, which is what users' patterns were written for.
    return regex.VERSION0 | (regex.IGNORECASE if ignore_case else 0)


def compile_check(pattern: str, *, ignore_case: bool = False) -> None:
    """Raise `error` when the pattern does not compile (compiling never backtracks, so it needs no limit). Python's
    own compiler speaks first: its messages are the ones users know."""
    re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    regex.compile(pattern, _flags(ignore_case))


def search(pattern: str, text: str, *, ignore_case: bool = False, seconds: float | None = None) -> bool:
    """Whether `pattern` matches somewhere in `text`; RegexTimeout when finding out takes longer than the limit."""
    limit = timeout_seconds() if seconds is None else seconds
    try:
        return regex.search(pattern, text, _flags(ignore_case), timeout=limit) is not None
    except TimeoutError:
        raise RegexTimeout(pattern, limit) from None
