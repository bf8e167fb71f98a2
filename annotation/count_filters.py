"""Which traces the failure-taxonomy counts look at: parsing and validating the filters of the counts page and
the taxonomy REST routes. No Django here, so every rule is tested without a database.

The filters are the trace list's (`source`, `meta=key=value`, spelled and matched the same way) plus a window on
`occurred_at`: `from`/`to` dates (UTC days, both inclusive) or a preset `period` relative to now (24h, 7d, 30d).
Every bad value is reported under the name of its parameter, never dropped silently: a count over the wrong
traces that looks right is worse than an error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

# The trace model's limits, so a value that cannot match any trace is an error rather than an empty table.
SOURCE_MAX_LENGTH = 64
META_KEY_MAX_LENGTH = 200
META_VALUE_MAX_LENGTH = 500

PERIODS: dict[str, tuple[timedelta, str]] = {
    "24h": (timedelta(hours=24), "last 24 hours"),
    "7d": (timedelta(days=7), "last 7 days"),
    "30d": (timedelta(days=30), "last 30 days"),
}

# "No new failure mode in the last N reviewed traces": N by default, and the largest N accepted.
DEFAULT_WINDOW = 20
MAX_WINDOW = 100_000
# Co-occurrence lists the most frequent pairs; 40 modes make 780 pairs, more than anyone reads.
DEFAULT_PAIR_LIMIT = 20
MAX_PAIR_LIMIT = 200

FILTER_PARAMETERS = ("source", "meta", "from", "to", "period")


@dataclass(frozen=True)
class CountFilters:
    """Valid filters; every field empty means all of the project's traces."""

    source: str = ""
    meta_key: str = ""
    meta_value: str = ""
    date_from: date | None = None
    date_to: date | None = None
    period: str = ""
    # The window on occurred_at the dates or the period stand for: [occurred_from, occurred_before).
    occurred_from: datetime | None = None
    occurred_before: datetime | None = None

    @property
    def meta(self) -> str:
        return f"{self.meta_key}={self.meta_value}" if self.meta_key else ""

    @property
    def is_filtered(self) -> bool:
        return bool(self.source or self.meta_key or self.occurred_from or self.occurred_before)

    @property
    def period_label(self) -> str:
        return PERIODS[self.period][1] if self.period else ""

    def query_items(self) -> list[tuple[str, str]]:
        """The filters as query-string pairs, in a fixed order (links and cache keys)."""
        items = []
        if self.source:
            items.append(("source", self.source))
        if self.meta_key:
            items.append(("meta", self.meta))
        if self.period:
            items.append(("period", self.period))
        if self.date_from:
            items.append(("from", self.date_from.isoformat()))
        if self.date_to:
            items.append(("to", self.date_to.isoformat()))
        return items


class FilterError(ValueError):
    """Bad filter values: `errors` maps each offending parameter to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))


def _text(query: Mapping[str, str], name: str) -> str:
    return (query.get(name) or "").strip()


def _parse_date(raw: str, name: str, errors: dict[str, str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = f"{raw!r} is not a date; write it as YYYY-MM-DD, e.g. 2026-11-01"
        return None


def parse_count_filters(query: Mapping[str, str], *, now: datetime) -> CountFilters:
    """The filters in a query string, or FilterError naming every bad parameter. `now` anchors the presets."""
    errors: dict[str, str] = {}

    source = _text(query, "source")
    if len(source) > SOURCE_MAX_LENGTH:
        errors["source"] = f"is {len(source)} characters long; a source has at most {SOURCE_MAX_LENGTH}"

    meta = _text(query, "meta")
    key, value = "", ""
    if meta:
        raw_key, equals, raw_value = meta.partition("=")
        key, value = raw_key.strip(), raw_value.strip()
        if not equals or not key:
            errors["meta"] = f"{meta!r} is not key=value; write e.g. locale=de"
        elif len(key) > META_KEY_MAX_LENGTH:
            errors["meta"] = f"the key is {len(key)} characters long; at most {META_KEY_MAX_LENGTH}"
        elif len(value) > META_VALUE_MAX_LENGTH:
            errors["meta"] = f"the value is {len(value)} characters long; at most {META_VALUE_MAX_LENGTH}"

    period = _text(query, "period")
    if period and period not in PERIODS:
        errors["period"] = f"{period!r} is not one of {', '.join(PERIODS)}"
    date_from = _parse_date(_text(query, "from"), "from", errors)
    date_to = _parse_date(_text(query, "to"), "to", errors)
    if period and (date_from or date_to) and "period" not in errors:
        errors["period"] = "choose either a preset period or from/to dates, not both"
    if date_from and date_to and date_from > date_to:
        errors["from"] = f"{date_from.isoformat()} is after to ({date_to.isoformat()})"

    if errors:
        raise FilterError(errors)

    occurred_from = occurred_before = None
    if period:
        occurred_from = now - PERIODS[period][0]
    if date_from:
        occurred_from = datetime.combine(date_from, datetime.min.time(), tzinfo=UTC)
    if date_to:
        # `to` is inclusive: the whole day counts.
        occurred_before = datetime.combine(date_to + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
    return CountFilters(
        source=source,
        meta_key=key,
        meta_value=value,
        date_from=date_from,
        date_to=date_to,
        period=period,
        occurred_from=occurred_from,
        occurred_before=occurred_before,
    )


def parse_bounded_int(raw: str | None, *, name: str, default: int, maximum: int) -> int:
    """A positive whole number from the query string (`window`, `limit`), or FilterError naming the parameter."""
    text = (raw or "").strip()
    if not text:
        return default
    # The length check first: int() of thousands of digits is slow, and refused past 4,300.
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or not 1 <= int(text) <= maximum:
        raise FilterError({name: f"{text!r} is not a whole number from 1 to {maximum:,}"})
    return int(text)
