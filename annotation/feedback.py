"""User feedback on a trace (thumbs, ratings, comments): validation, normalisation and the readers of other sources
(OTel span attributes/events, Langfuse scores). No Django here; storing is annotation.feedback_services.

One item of the trace format's `feedback` list:

    {"kind": "thumbs", "value": "up" | "down" | 1 | 0 | -1 | true | false}
    {"kind": "rating", "value": 2, "scale": 5}         # 0 ≤ value ≤ scale; scale defaults to 5
    {"kind": "comment", "value": "free text"}
    + optional "at" (ISO 8601), "source", "user", "id" (the client's idempotency key)

`negative` is the one normalised signal: a thumbs down, or a rating at most 40% of its scale (1–2 of 5); None for a
comment, which carries no polarity of its own.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

KINDS = ("thumbs", "rating", "comment")
ITEM_KEYS = ("kind", "value", "scale", "at", "source", "user", "id")
DEFAULT_SCALE = 5.0
# A rating at or below this share of its scale is negative: 1 and 2 of 5, 1–4 of 10, 0 of 1.
NEGATIVE_RATING_SHARE = 0.4
MAX_COMMENT_CHARS = 10_000
MAX_SOURCE_CHARS = 64
MAX_USER_CHARS = 255
MAX_ID_CHARS = 255
MAX_SCALE = 1_000_000.0
THUMBS_UP = frozenset({"up", "+1", "👍"})
THUMBS_DOWN = frozenset({"down", "-1", "👎"})


class FeedbackError(ValueError):
    """One feedback item is invalid; the message names the item and field (`feedback[2].kind: ...`)."""


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    kind: str
    value: str | float  # "up"/"down" for thumbs, the number for a rating, the text of a comment
    negative: bool | None
    scale: float | None = None
    at: datetime | None = None
    source: str = ""
    user: str = ""
    client_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The item in the trace format, keys in a fixed order and empty ones left out (what export writes)."""
        item: dict[str, Any] = {"kind": self.kind, "value": _plain_number(self.value)}
        if self.scale is not None:
            item["scale"] = _plain_number(self.scale)
        if self.at is not None:
            item["at"] = self.at.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"
        for key, value in (("source", self.source), ("user", self.user), ("id", self.client_id)):
            if value:
                item[key] = value
        return item

    def content_key(self) -> str:
        """An idempotency key for an item sent without `id`: the same content gets the same key on re-import."""
        # Fields joined by a separator no validated text can hold (NUL is refused): cheap enough for an import of a
        # million items, and the same for an item read back from an export (the value's type is fixed by its kind).
        at = "" if self.at is None else self.at.astimezone(UTC).isoformat()
        canonical = "\x00".join((self.kind, repr(self.value), repr(self.scale), at, self.source, self.user))
        return "fb:" + hashlib.blake2b(canonical.encode("utf-8"), digest_size=16).hexdigest()


def _plain_number(value: Any) -> Any:
    # 4.0 is written as 4, as the user most likely sent it.
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 40 else value[:37] + "...", ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, dict) else type(value).__name__


def _text(value: object, where: str, max_chars: int) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise FeedbackError(f"{where}: expected a string, got {_describe(value)}")
    if len(value) > max_chars:
        raise FeedbackError(f"{where}: at most {max_chars} characters, got {len(value)}")
    if "\x00" in value:
        raise FeedbackError(f"{where}: contains a NUL character (\\u0000), which cannot be stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise FeedbackError(f"{where}: contains an unpaired surrogate at character {exc.start + 1}") from None
    return value


def _number(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        if isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise FeedbackError(f"{where}: expected a number, got {_describe(value)}") from None
        else:
            raise FeedbackError(f"{where}: expected a number, got {_describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise FeedbackError(f"{where}: expected a finite number, got {_describe(value)}")
    return number


def _thumbs(value: object, where: str) -> str:
    if isinstance(value, bool):
        return "up" if value else "down"
    if isinstance(value, int | float) and value in (1, 0, -1):
        return "up" if value == 1 else "down"
    if isinstance(value, str):
        text = value.strip().lower()
        if text in THUMBS_UP:
            return "up"
        if text in THUMBS_DOWN:
            return "down"
    raise FeedbackError(f'{where}: expected "up" or "down" (or 1 = up, 0 or -1 = down), got {_describe(value)}')


def _timestamp(value: object, where: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise FeedbackError(f"{where}: expected an ISO 8601 date-time string, got {_describe(value)}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise FeedbackError(f"{where}: not an ISO 8601 date-time: {_describe(value)}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def rating_is_negative(value: float, scale: float) -> bool:
    return value <= scale * NEGATIVE_RATING_SHARE


def parse_feedback_item(item: object, where: str) -> FeedbackRecord:
    """One item → a FeedbackRecord, or FeedbackError naming `where` and the field."""
    if not isinstance(item, dict):
        raise FeedbackError(f"{where}: expected an object, got {_describe(item)}")
    for key in item:
        if key not in ITEM_KEYS:
            raise FeedbackError(f"{where}: unknown key {key!r}; expected {', '.join(ITEM_KEYS)}")
    kind = item.get("kind")
    if kind not in KINDS:
        raise FeedbackError(f'{where}.kind: expected "thumbs", "rating" or "comment", got {_describe(kind)}')
    if "value" not in item or item["value"] is None:
        raise FeedbackError(f"{where}.value: required")
    raw = item["value"]
    scale: float | None = None
    if "scale" in item and item["scale"] is not None and kind != "rating":
        raise FeedbackError(f"{where}.scale: only a rating has a scale")
    if kind == "thumbs":
        value: str | float = _thumbs(raw, f"{where}.value")
        negative: bool | None = value == "down"
    elif kind == "rating":
        scale = DEFAULT_SCALE if item.get("scale") is None else _number(item["scale"], f"{where}.scale")
        if not 0 < scale <= MAX_SCALE:
            raise FeedbackError(f"{where}.scale: expected a number above 0 and at most {MAX_SCALE:g}, got {scale:g}")
        value = _number(raw, f"{where}.value")
        if not 0 <= value <= scale:
            raise FeedbackError(f"{where}.value: {value:g} is outside the scale 0–{scale:g}")
        negative = rating_is_negative(value, scale)
    else:
        value = _text(raw, f"{where}.value", MAX_COMMENT_CHARS)
        if not value.strip():
            raise FeedbackError(f"{where}.value: a comment needs text")
        negative = None
    client_id = _text(item.get("id"), f"{where}.id", MAX_ID_CHARS).strip()
    return FeedbackRecord(
        kind=kind,
        value=value,
        negative=negative,
        scale=scale,
        at=_timestamp(item.get("at"), f"{where}.at"),
        source=_text(item.get("source"), f"{where}.source", MAX_SOURCE_CHARS),
        user=_text(item.get("user"), f"{where}.user", MAX_USER_CHARS),
        client_id=client_id,
    )


def parse_feedback(value: object, where: str = "feedback") -> list[FeedbackRecord]:
    """The trace format's `feedback` (a list, or null) → records; FeedbackError names the index."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise FeedbackError(f"{where}: expected a list, got {_describe(value)}")
    records = [parse_feedback_item(item, f"{where}[{index}]") for index, item in enumerate(value)]
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        if record.client_id:
            if record.client_id in seen:
                raise FeedbackError(
                    f"{where}[{index}].id: {record.client_id!r} is also the id of {where}[{seen[record.client_id]}]"
                )
            seen[record.client_id] = index
    return records


# --- other sources ---------------------------------------------------------------------------------------------

# OTel span attributes (or attributes of a span event named "feedback") that carry user feedback.
ATTRIBUTE_KINDS = {"feedback.thumbs": "thumbs", "feedback.rating": "rating", "feedback.comment": "comment"}
ATTRIBUTE_EXTRAS = {"feedback.rating.scale": "scale", "feedback.at": "at", "feedback.source": "source"}
ATTRIBUTE_USER = "feedback.user"
ATTRIBUTE_ID = "feedback.id"


def feedback_from_attributes(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """Feedback items (the trace format's shape, not yet validated) from one span's or span event's attributes.

    Names: `feedback.thumbs` ("up"/"down", 1/0/-1 or a bool), `feedback.rating` (a number) with optional
    `feedback.rating.scale`, `feedback.comment` (text); shared by the items of one span: `feedback.at`,
    `feedback.source`, `feedback.user`, `feedback.id` (suffixed `:thumbs`/`:rating`/`:comment` per item so that
    one span's items keep distinct ids). Other attributes are ignored. Pass the result to `parse_feedback`.
    """
    shared: dict[str, Any] = {}
    for name, key in ATTRIBUTE_EXTRAS.items():
        if key != "scale" and attributes.get(name) not in (None, ""):
            shared[key] = attributes[name]
    if attributes.get(ATTRIBUTE_USER) not in (None, ""):
        shared["user"] = attributes[ATTRIBUTE_USER]
    items: list[dict[str, Any]] = []
    for name, kind in ATTRIBUTE_KINDS.items():
        value = attributes.get(name)
        if value is None or value == "":
            continue
        item: dict[str, Any] = {"kind": kind, "value": value, **shared}
        if kind == "rating" and attributes.get("feedback.rating.scale") is not None:
            item["scale"] = attributes["feedback.rating.scale"]
        if attributes.get(ATTRIBUTE_ID) not in (None, ""):
            item["id"] = f"{attributes[ATTRIBUTE_ID]}:{kind}"
        items.append(item)
    return items


# Langfuse score sources that are not an end user: its evaluators and its own annotation queues.
NOT_USER_SCORE_SOURCES = {"EVAL": "an evaluator's score", "ANNOTATION": "a Langfuse annotator's score"}
# Langfuse score names read as thumbs or comments; any other NUMERIC score is a rating.
THUMBS_SCORE_NAMES = frozenset({"thumbs", "user-feedback", "user_feedback", "feedback", "thumbs_up", "helpful"})


def feedback_from_langfuse_scores(scores: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Feedback items from Langfuse score objects (`name`, `value`, `dataType`, `comment`, `timestamp`, `id`,
    `source`, optional `stringValue`, `configId`).

    - BOOLEAN scores and NUMERIC scores named like thumbs (`user-feedback`, `thumbs`, …) with value 1/0/-1 →
      thumbs; other NUMERIC → a rating (scale from a `maxValue` when present, else 5; a value in [0, 1] with no
      scale is taken on the scale 1);
    - CATEGORICAL → thumbs when the label is up/down/positive/negative/good/bad, otherwise skipped;
    - a score's `comment` → a comment item beside it;
    - a score whose `source` is EVAL or ANNOTATION (an evaluator's or a Langfuse annotator's) is not a user's: none.
    Ids are `langfuse:<score id>` (and `…:comment`), so re-reading the same scores stores nothing new.
    """
    items: list[dict[str, Any]] = []
    for score in scores:
        if not isinstance(score, dict) or str(score.get("source") or "").upper() in NOT_USER_SCORE_SOURCES:
            continue
        kind_name = str(score.get("dataType") or "NUMERIC").upper()
        name = str(score.get("name") or "")
        value = score.get("value")
        shared: dict[str, Any] = {"source": "langfuse"}
        if score.get("timestamp"):
            shared["at"] = score["timestamp"]
        user = score.get("userId") or score.get("user")
        if user:
            shared["user"] = user
        score_id = score.get("id")
        item: dict[str, Any] | None = None
        if kind_name == "BOOLEAN":
            if value is not None:
                item = {"kind": "thumbs", "value": bool(value)}
        elif kind_name == "CATEGORICAL":
            label = str(score.get("stringValue") or (value if isinstance(value, str) else "")).strip().lower()
            if label in ("up", "positive", "good", "thumbs_up", "yes", "true"):
                item = {"kind": "thumbs", "value": "up"}
            elif label in ("down", "negative", "bad", "thumbs_down", "no", "false"):
                item = {"kind": "thumbs", "value": "down"}
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if name.lower() in THUMBS_SCORE_NAMES and value in (1, 0, -1):
                item = {"kind": "thumbs", "value": int(value)}
            else:
                scale = score.get("maxValue")
                if scale is None:
                    scale = 1 if 0 <= value <= 1 and not float(value).is_integer() else DEFAULT_SCALE
                item = {"kind": "rating", "value": value, "scale": scale}
        if item is not None:
            if score_id:
                item["id"] = f"langfuse:{score_id}"
            items.append({**item, **shared})
        comment = score.get("comment")
        if isinstance(comment, str) and comment.strip():
            extra: dict[str, Any] = {"kind": "comment", "value": comment, **shared}
            if score_id:
                extra["id"] = f"langfuse:{score_id}:comment"
            items.append(extra)
    return items
