"""The trace file format (JSONL and CSV): streaming readers, validation and serialisation. No Django here.

Every way into EvalStudio (the `import_traces` command, the REST API, browser uploads) goes through
`parse_record`, so a trace means the same thing whichever door it came in by. Errors name the field and, via the
readers, the line, because a bad line must never be dropped silently or reported vaguely.
"""

from __future__ import annotations

import codecs
import csv
import difflib
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO

from annotation.feedback import FeedbackError, FeedbackRecord, parse_feedback
from annotation.taxonomy_format import csv_unescape
from core.json_input import JsonTooDeep, json_depth_check, max_json_depth, too_deep_message

# Column limits mirror annotation.models (this module stays Django-free, so they are restated here); checking
# them up front turns a database error that would abort a whole batch into a rejection of the one bad line.
MAX_ID_CHARS = 255
MAX_SESSION_CHARS = 255
MAX_SOURCE_CHARS = 64
MAX_CRITERION_CHARS = 100
MAX_FAILURE_MODE_CHARS = 200
MIN_INT32, MAX_INT32 = -(2**31), 2**31 - 1

FIELDS = (
    "id",
    "input",
    "output",
    "messages",
    "context",
    "metadata",
    "session_id",
    "task_id",
    "trial",
    "source",
    "timestamp",
    "labels",
    "notes",
    "feedback",
    "reference",
)
# Keys other EvalStudio exports add to a trace record that say nothing about the trace itself (a golden-set export's
# `golden`): read and ignored, so those files import as they are. Any other unknown key is still an error.
IGNORED_FIELDS = frozenset({"golden"})
# CSV cells that hold JSON text rather than plain text.
JSON_COLUMNS = frozenset({"messages", "context", "metadata", "labels", "notes", "feedback"})
ROLES = frozenset({"system", "user", "assistant", "tool", "developer", "function"})
VERDICTS = ("pass", "fail")
UTF8_BOM = codecs.BOM_UTF8
# Formats read by annotation.peer_formats: files written by other tools, and the native shape as Parquet.
PEER_FORMATS = ("otlp-json", "phoenix", "langfuse", "parquet")


class RecordError(ValueError):
    """One record is invalid; the message names the field (the reader adds the line)."""


class FormatError(ValueError):
    """The file as a whole cannot be read (empty, unknown CSV columns); nothing in it is imported."""


@dataclass(frozen=True, slots=True)
class LabelRecord:
    criterion: str
    verdict: str
    critique: str


@dataclass(frozen=True, slots=True)
class NoteRecord:
    text: str
    failure_modes: tuple[str, ...] = ()


@dataclass(slots=True)
class TraceRecord:
    external_id: str
    input: str = ""
    output: str = ""
    messages: list[Any] | None = None
    context: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    session_id: str = ""
    task_id: str = ""
    trial: int | None = None
    source: str = ""
    timestamp: datetime | None = None
    labels: list[LabelRecord] = field(default_factory=list)
    notes: list[NoteRecord] = field(default_factory=list)
    feedback: list[FeedbackRecord] = field(default_factory=list)
    # A known-good answer (reference judges): a string, or any JSON value; None when the record has none.
    reference: Any = None
    # The JSON-valued fields as compact JSON text: checked once here, then written as is by the COPY path.
    messages_json: str | None = None
    context_json: str | None = None
    metadata_json: str = "{}"
    reference_json: str | None = None


@dataclass(frozen=True, slots=True)
class RawRecord:
    """What a reader yields: the decoded object of one record, or why it could not be decoded.

    `line` is the 1-based line where the record starts; `size` its length in bytes.
    """

    line: int
    value: object = None
    error: str | None = None
    size: int = 0


# --- JSON ------------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> float:
    # NaN and Infinity are not JSON; Python accepts them by default but PostgreSQL's jsonb does not.
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    number = float(text)
    if math.isinf(number):
        raise ValueError(f"number {text} is out of range")
    return number


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)


def loads(text: str | bytes) -> Any:
    """Strict JSON: no NaN/Infinity, no overflowing floats. Raises ValueError with a readable message; JsonTooDeep
    (a ValueError) when the text nests deeper than the parser can go. The depth of each record is checked by
    `parse_record`, which names the field: a document holding many records is not limited as a whole here."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    try:
        return _decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{exc.msg} at column {exc.colno}") from None
    except RecursionError:
        raise JsonTooDeep(too_deep_message("", max_json_depth())) from None


# Built once: json.dumps with non-default options constructs a new encoder on every call, a measurable share of
# the time per trace at a million traces.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


_export_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def dumps(value: Any) -> str:
    """Compact JSON, UTF-8 text kept as is; the one encoding used for export and for hashing."""
    return _export_encoder.encode(value)


# --- readers ---------------------------------------------------------------------------------------------------


def _lines(stream: BinaryIO, max_bytes: int) -> Iterator[tuple[int, bytes | None, int]]:
    """(line number, bytes or None when over the limit, size in bytes) for each physical line.

    Reads at most `max_bytes + 1` bytes of a line at once, so a runaway line cannot exhaust memory.
    """
    number = 0
    limit = max_bytes + 1
    while True:
        chunk = stream.readline(limit)
        if not chunk:
            return
        number += 1
        if len(chunk) < limit or chunk.endswith(b"\n"):
            yield number, chunk, len(chunk)
            continue
        size = len(chunk)
        while not chunk.endswith(b"\n"):
            chunk = stream.readline(1 << 20)
            if not chunk:
                break
            size += len(chunk)
        yield number, None, size


def _too_big(size: int, max_bytes: int) -> str:
    return f"record is {size:,} bytes, over the limit of {max_bytes:,} bytes"


def text_lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, str | None, str | None, int]]:
    """(line number, text, error, size) for each physical line of a line-per-record file: the text stripped (and
    the UTF-8 BOM of line 1 dropped), "" for a blank line; None with the error for a line over `limit` bytes or not
    UTF-8. Each line is decoded on its own, so bad bytes reject only that line. The JSONL readers of every format
    (native, otlp-json, Phoenix, Langfuse) read their lines through this."""
    for number, chunk, size in _lines(stream, limit):
        if chunk is None:
            yield number, None, _too_big(size, limit), size
            continue
        if number == 1 and chunk.startswith(UTF8_BOM):
            chunk = chunk[len(UTF8_BOM) :]
        stripped = chunk.strip()
        if len(stripped) > limit:
            yield number, None, _too_big(len(stripped), limit), size
            continue
        try:
            yield number, stripped.decode("utf-8"), None, size
        except UnicodeDecodeError as exc:
            yield number, None, f"invalid UTF-8 at byte {exc.start + 1}", size


def read_jsonl(stream: BinaryIO, *, max_bytes: int) -> Iterator[RawRecord]:
    """One RawRecord per non-blank line."""
    seen_any = False
    for number, text, error, size in text_lines(stream, max_bytes):
        seen_any = True
        if error is not None:
            yield RawRecord(number, error=error, size=size)
            continue
        if not text:
            continue
        try:
            value = loads(text)
        except ValueError as exc:
            yield RawRecord(number, error=f"invalid JSON: {exc}", size=size)
            continue
        yield RawRecord(number, value=value, size=size)
    if not seen_any:
        raise FormatError("the file is empty")


def read_csv(stream: BinaryIO, *, max_bytes: int) -> Iterator[RawRecord]:
    """One RawRecord per CSV row, with the columns of the JSONL format; JSON-valued cells hold JSON text.

    An empty cell means the field is absent. Bytes are decoded with surrogateescape so that invalid UTF-8 is
    found per row (and reported with its column) instead of stopping the whole file.
    """
    position = {"line": 0, "bytes": 0, "oversize": False}

    def text_lines() -> Iterator[str]:
        for number, chunk, size in _lines(stream, max_bytes):
            position["line"] = number
            position["bytes"] += size
            if chunk is None:
                # The line itself was skipped unread; mark the record it belongs to so it is rejected whole.
                position["oversize"] = True
                yield "\n"
                continue
            if number == 1 and chunk.startswith(UTF8_BOM):
                chunk = chunk[len(UTF8_BOM) :]
            yield chunk.decode("utf-8", "surrogateescape")

    lines = text_lines()
    # Quoted cells may legitimately be large; the byte limit per record is enforced by us, not csv.
    csv.field_size_limit(max(max_bytes + 1, 131072))
    reader = csv.reader(lines, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise FormatError("the file is empty") from None
    except csv.Error as exc:
        raise FormatError(f"line 1: the CSV header cannot be read: {exc}") from None
    columns = [name.strip() for name in header]
    unknown = [name for name in columns if name not in FIELDS]
    if unknown:
        raise FormatError(f"line 1: unknown CSV column {_unknown_name(unknown[0], FIELDS)}")
    duplicated = sorted({name for name in columns if columns.count(name) > 1})
    if duplicated:
        raise FormatError(f"line 1: CSV column {duplicated[0]!r} appears more than once")

    start_line, start_bytes = position["line"] + 1, position["bytes"]
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield RawRecord(start_line, error=f"malformed CSV: {exc}", size=position["bytes"] - start_bytes)
            start_line, start_bytes = position["line"] + 1, position["bytes"]
            continue
        line, size = start_line, position["bytes"] - start_bytes
        start_line, start_bytes = position["line"] + 1, position["bytes"]
        if size > max_bytes or position["oversize"]:
            position["oversize"] = False
            yield RawRecord(line, error=_too_big(size, max_bytes), size=size)
            continue
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            yield RawRecord(line, error=f"expected {len(columns)} cells, got {len(row)}", size=size)
            continue
        try:
            yield RawRecord(line, value=_csv_row_to_object(columns, row), size=size)
        except RecordError as exc:
            yield RawRecord(line, error=str(exc), size=size)


_INT_TEXT = re.compile(r"[+-]?\d+")


def _csv_row_to_object(columns: list[str], row: list[str]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for name, cell in zip(columns, row, strict=True):
        if cell == "":
            continue
        cell = csv_unescape(cell)  # the apostrophe export_traces put before a formula-like cell
        try:
            cell.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise RecordError(f"{name}: invalid UTF-8 at character {exc.start + 1}") from None
        if name == "context" and not cell.lstrip().startswith("["):
            # A plain passage is the common case for a single context string; a list is written as JSON.
            obj[name] = cell
        elif name == "reference":
            obj[name] = reference_from_cell(cell)
        elif name in JSON_COLUMNS:
            try:
                obj[name] = loads(cell)
            except ValueError as exc:
                raise RecordError(f"{name}: invalid JSON in cell: {exc}") from None
        elif name == "trial" and _INT_TEXT.fullmatch(cell.strip()):
            obj[name] = int(cell)
        else:
            obj[name] = cell
    return obj


# A `reference` cell is JSON when it starts like a JSON object, array or string, and plain text otherwise (an
# answer written by hand needs no quotes). export_traces writes a text that would be misread as JSON text.
_JSON_REFERENCE_STARTS = ("{", "[", '"')


def reference_from_cell(cell: str) -> Any:
    """A `reference` read from a CSV cell or a Parquet string column (see reference_cell)."""
    if not cell.lstrip().startswith(_JSON_REFERENCE_STARTS):
        return cell
    try:
        return loads(cell)
    except ValueError as exc:
        raise RecordError(f'reference: invalid JSON in cell (a cell starting with {{, [ or " is JSON): {exc}') from None


def reference_cell(value: Any) -> str:
    """A reference as CSV/Parquet text that reference_from_cell reads back (a number comes back as its text)."""
    if isinstance(value, str) and not value.lstrip().startswith(_JSON_REFERENCE_STARTS):
        return value
    return dumps(value)


def format_for_path(path: str) -> str:
    """The reader to use for a file name: CSV and Parquet (native shape) by extension, JSONL otherwise. Files of
    other tools are named by `--format`: their extensions (.json, .jsonl, .parquet) say nothing of their shape."""
    name = path.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    return "parquet" if name.endswith(".parquet") else "jsonl"


# --- validation ------------------------------------------------------------------------------------------------


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _unknown_name(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"{name!r}{hint}"


def _check_text(value: str, where: str) -> str:
    # PostgreSQL text and jsonb cannot hold NUL, and an unpaired surrogate (from a "\ud800" escape) is not
    # encodable as UTF-8; both would otherwise fail a whole batch at the database.
    if "\x00" in value:
        raise RecordError(f"{where}: contains a NUL character (\\u0000), which cannot be stored")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise RecordError(f"{where}: contains an unpaired surrogate at character {exc.start + 1}") from None
    return value


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _string(
    value: object, where: str, *, max_chars: int | None = None, allow_int: bool = False, check: bool = True
) -> str:
    """`check=False` when the caller checks the text itself later, in one go (see parse_record, _json_text)."""
    if allow_int and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise RecordError(f"{where}: expected a string, got {_describe(value)}")
    if max_chars is not None and len(value) > max_chars:
        raise RecordError(f"{where}: at most {max_chars} characters, got {len(value)}")
    return _check_text(value, where) if check else value


def _optional_string(
    value: object, where: str, *, max_chars: int | None = None, allow_int: bool = False, check: bool = True
) -> str:
    if value is None:
        return ""
    # The common case, kept cheap: called several times for each of a million traces.
    if type(value) is str and not check and (max_chars is None or len(value) <= max_chars):
        return value
    return _string(value, where, max_chars=max_chars, allow_int=allow_int, check=check)


def _check_json_tree(value: object, where: str) -> None:
    """Strings anywhere in free-form JSON (metadata, message extras) must be storable too."""
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise RecordError(f"{where}: {value} is not a valid JSON number")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"{where} key")
            _check_json_tree(item, f"{where}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_json_tree(item, f"{where}[{index}]")


def _json_text(value: object, where: str) -> str:
    """Compact JSON text of a free-form value, refusing what the database cannot store (see `_check_text`).

    Checking the serialised text once is far cheaper than walking the tree; the walk only runs to name the field
    when the text shows a problem.
    """
    try:
        text = _encoder.encode(value)
        text.encode("utf-8")
    except (ValueError, UnicodeEncodeError):
        _check_json_tree(value, where)
        raise RecordError(f"{where}: cannot be stored as JSON") from None
    if "\\u0000" in text:
        _check_json_tree(value, where)
    return text


def _parse_content(value: object, where: str) -> None:
    if value is None or isinstance(value, str):
        return
    if not isinstance(value, list):
        raise RecordError(f"{where}: expected a string, null or a list of content parts, got {_describe(value)}")
    for index, part in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(part, dict):
            raise RecordError(f"{here}: expected an object, got {_describe(part)}")
        kind = part.get("type")
        if not isinstance(kind, str) or not kind:
            raise RecordError(f"{here}.type: expected a string, got {_describe(kind)}")
        if kind == "text":
            _string(part.get("text"), f"{here}.text", check=False)


def _parse_tool_calls(value: object, where: str) -> None:
    if not isinstance(value, list):
        raise RecordError(f"{where}: expected a list, got {_describe(value)}")
    for index, call in enumerate(value):
        here = f"{where}[{index}]"
        if not isinstance(call, dict):
            raise RecordError(f"{here}: expected an object, got {_describe(call)}")
        _string(call.get("id"), f"{here}.id", check=False)
        kind = call.get("type", "function")
        if kind != "function":
            raise RecordError(f'{here}.type: expected "function", got {_describe(kind)}')
        function = call.get("function")
        if not isinstance(function, dict):
            raise RecordError(f"{here}.function: expected an object, got {_describe(function)}")
        _string(function.get("name"), f"{here}.function.name", check=False)
        arguments = function.get("arguments")
        if isinstance(arguments, dict | list):
            # Several exporters write the arguments as a JSON value; stored as the JSON text OpenAI sends, so
            # every trace holds them one way.
            function["arguments"] = dumps(arguments)
        else:
            _string(arguments, f"{here}.function.arguments", check=False)


def _parse_messages(value: object) -> list[Any] | None:
    if value is None:
        return None
    if not isinstance(value, list):
        raise RecordError(f"messages: expected a list, got {_describe(value)}")
    for index, message in enumerate(value):
        here = f"messages[{index}]"
        if not isinstance(message, dict):
            raise RecordError(f"{here}: expected an object, got {_describe(message)}")
        role = message.get("role")
        if role not in ROLES:
            raise RecordError(f"{here}.role: expected one of {', '.join(sorted(ROLES))}, got {_describe(role)}")
        _parse_content(message.get("content"), f"{here}.content")
        if "tool_calls" in message and message["tool_calls"] is not None:
            _parse_tool_calls(message["tool_calls"], f"{here}.tool_calls")
        if role == "tool":
            _string(message.get("tool_call_id"), f"{here}.tool_call_id", check=False)
        if "name" in message and message["name"] is not None:
            _string(message["name"], f"{here}.name", check=False)
        # Other OpenAI keys (refusal, audio, function_call...) are kept as they are; `_json_text` checks their text.
    return value


def _parse_context(value: object) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [_check_text(value, "context")]
    if not isinstance(value, list):
        raise RecordError(f"context: expected a list of strings or a string, got {_describe(value)}")
    for index, item in enumerate(value):
        _string(item, f"context[{index}]")
    return value


def _parse_metadata(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"metadata: expected an object, got {_describe(value)}")
    return value


def _parse_trial(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise RecordError(f"trial: expected an integer, got {_describe(value)}")
    if not MIN_INT32 <= value <= MAX_INT32:
        raise RecordError(f"trial: {value} is out of range")
    return value


def parse_timestamp(value: object, where: str = "timestamp") -> datetime | None:
    """ISO 8601 date-time (a trailing Z means UTC) → aware datetime; one without an offset is taken as UTC."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise RecordError(f"{where}: expected an ISO 8601 date-time string, got {_describe(value)}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise RecordError(f"{where}: not an ISO 8601 date-time: {_describe(value)}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _parse_labels(value: object) -> list[LabelRecord]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"labels: expected a list, got {_describe(value)}")
    labels: list[LabelRecord] = []
    seen: set[str] = set()
    for index, item in enumerate(value):
        here = f"labels[{index}]"
        if not isinstance(item, dict):
            raise RecordError(f"{here}: expected an object, got {_describe(item)}")
        for key in item:
            if key not in ("criterion", "verdict", "critique"):
                raise RecordError(f"{here}: unknown key {_unknown_name(key, ('criterion', 'verdict', 'critique'))}")
        criterion = _string(item.get("criterion"), f"{here}.criterion", max_chars=MAX_CRITERION_CHARS).strip()
        if not criterion:
            raise RecordError(f"{here}.criterion: must not be empty")
        if criterion in seen:
            raise RecordError(f"{here}.criterion: {criterion!r} is labelled more than once")
        seen.add(criterion)
        verdict = item.get("verdict")
        if verdict not in VERDICTS:
            raise RecordError(f'{here}.verdict: expected "pass" or "fail", got {_describe(verdict)}')
        critique = _optional_string(item.get("critique"), f"{here}.critique")
        labels.append(LabelRecord(criterion=criterion, verdict=verdict, critique=critique))
    return labels


def _parse_notes(value: object) -> list[NoteRecord]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise RecordError(f"notes: expected a list, got {_describe(value)}")
    notes: list[NoteRecord] = []
    for index, item in enumerate(value):
        here = f"notes[{index}]"
        if isinstance(item, str):
            text, modes = item, ()
        elif isinstance(item, dict):
            for key in item:
                if key not in ("text", "failure_modes"):
                    raise RecordError(f"{here}: unknown key {_unknown_name(key, ('text', 'failure_modes'))}")
            text = _string(item.get("text"), f"{here}.text")
            raw_modes = item.get("failure_modes") or []
            if not isinstance(raw_modes, list):
                raise RecordError(f"{here}.failure_modes: expected a list of names, got {_describe(raw_modes)}")
            names: list[str] = []
            for mode_index, name in enumerate(raw_modes):
                where = f"{here}.failure_modes[{mode_index}]"
                name = _string(name, where, max_chars=MAX_FAILURE_MODE_CHARS).strip()
                if not name:
                    raise RecordError(f"{where}: must not be empty")
                if name not in names:
                    names.append(name)
            modes = tuple(names)
        else:
            raise RecordError(f"{here}: expected a string or an object with text, got {_describe(item)}")
        _check_text(text, here)
        if not text.strip():
            raise RecordError(f"{here}: a note needs text")
        notes.append(NoteRecord(text=text, failure_modes=modes))
    return notes


def content_hash(*, input: str, output: str, messages: list[Any] | None, context: list[str] | None) -> str:
    """The idempotency key of a trace without an `id`: the same content always gets the same key."""
    canonical = json.dumps(
        {"input": input, "output": output, "messages": messages, "context": context},
        ensure_ascii=False,
        sort_keys=True,
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]


def shuffle_key(seed: str, external_id: str) -> int:
    """A stable pseudo-random position for a trace in its project's "random" queue order (seeded per project)."""
    digest = hashlib.blake2b(f"{seed}:{external_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1  # fits a signed bigint


def parse_record(obj: object) -> TraceRecord:
    """Validate one decoded record. Raises RecordError naming the offending field."""
    if not isinstance(obj, dict):
        raise RecordError(f"expected a JSON object, got {_describe(obj)}")
    try:
        json_depth_check(obj)
    except JsonTooDeep as exc:
        raise RecordError(str(exc)) from None
    for key in obj:
        if key not in _FIELD_SET and key not in IGNORED_FIELDS:
            raise RecordError(f"unknown field {_unknown_name(key, FIELDS)}")
    get = obj.get
    input_text = _optional_string(get("input"), "input", check=False)
    output_text = _optional_string(get("output"), "output", check=False)
    messages = _parse_messages(get("messages"))
    if not input_text and not output_text and not messages:
        raise RecordError("at least one of input, output or messages is required")
    context = _parse_context(get("context"))
    raw_id = get("id")
    if raw_id is None:
        external_id = content_hash(input=input_text, output=output_text, messages=messages, context=context)
    else:
        external_id = _string(raw_id, "id", max_chars=MAX_ID_CHARS, allow_int=True, check=False)
        if not external_id.strip():
            raise RecordError("id: must not be empty")
    session_id = _optional_string(
        get("session_id"), "session_id", max_chars=MAX_SESSION_CHARS, allow_int=True, check=False
    )
    task_id = _optional_string(get("task_id"), "task_id", max_chars=MAX_SESSION_CHARS, allow_int=True, check=False)
    source = _optional_string(get("source"), "source", max_chars=MAX_SOURCE_CHARS, check=False)
    plain = (input_text, output_text, external_id, session_id, task_id, source)
    # One scan over all plain-text fields; only on a hit are they checked one by one to name the field.
    joined = "".join(plain)
    if "\x00" in joined or (not joined.isascii() and _has_surrogate(joined)):
        for name, text in zip(("input", "output", "id", "session_id", "task_id", "source"), plain, strict=True):
            _check_text(text, name)
    metadata = _parse_metadata(get("metadata"))
    reference = get("reference")
    reference_json = None if reference is None else _json_text(reference, "reference")
    return TraceRecord(
        external_id=external_id,
        input=input_text,
        output=output_text,
        messages=messages,
        context=context,
        metadata=metadata,
        session_id=session_id,
        task_id=task_id,
        trial=_parse_trial(get("trial")),
        source=source,
        timestamp=parse_timestamp(get("timestamp")),
        labels=_parse_labels(get("labels")),
        notes=_parse_notes(get("notes")),
        feedback=_parse_feedback(get("feedback")),
        reference=reference,
        messages_json=None if messages is None else _json_text(messages, "messages"),
        context_json=None if context is None else _json_text(context, "context"),
        metadata_json=_json_text(metadata, "metadata"),
        reference_json=reference_json,
    )


_FIELD_SET = frozenset(FIELDS)


def parse_reference(value: object) -> Any:
    """A known-good answer as a trace stores it: any JSON value (JSON null is no reference), whose text must be
    storable (no NUL, no lone surrogate) and not nested too deep. Raises RecordError naming `reference`."""
    if value is None:
        return None
    try:
        json_depth_check(value, where="reference")
    except JsonTooDeep as exc:
        raise RecordError(str(exc)) from None
    _json_text(value, "reference")
    return value


def _parse_feedback(value: object) -> list[FeedbackRecord]:
    # Users' thumbs, ratings and comments (annotation.feedback); errors name the item: `feedback[2].kind: ...`.
    try:
        return parse_feedback(value)
    except FeedbackError as exc:
        raise RecordError(str(exc)) from None


def record_id(obj: object) -> str | None:
    """The `id` a record claims, for reporting a rejection even when the record is invalid."""
    if isinstance(obj, dict):
        value = obj.get("id")
        if isinstance(value, str):
            return value[:MAX_ID_CHARS]
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


# --- serialisation (export) ------------------------------------------------------------------------------------


def format_timestamp(value: datetime) -> str:
    text = value.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def serialize_trace(
    *,
    external_id: str,
    input: str,
    output: str,
    messages: list[Any] | None,
    context: list[str] | None,
    metadata: dict[str, Any] | None,
    session_id: str,
    task_id: str,
    trial: int | None,
    source: str,
    occurred_at: datetime,
    labels: Iterable[LabelRecord] = (),
    notes: Iterable[NoteRecord] = (),
    feedback: Iterable[FeedbackRecord] = (),
    reference: Any = None,
) -> dict[str, Any]:
    """A trace as a record of the file format, keys in a fixed order and empty fields left out.

    `parse_record` maps every left-out field back to the same stored value, and labels are sorted by criterion
    name and note failure modes by name, so export → import → export is byte-identical.
    """
    record: dict[str, Any] = {"id": external_id}
    if input:
        record["input"] = input
    if output:
        record["output"] = output
    if messages is not None:
        record["messages"] = messages
    if context is not None:
        record["context"] = context
    if metadata:
        record["metadata"] = metadata
    if session_id:
        record["session_id"] = session_id
    if task_id:
        record["task_id"] = task_id
    if trial is not None:
        record["trial"] = trial
    if source:
        record["source"] = source
    record["timestamp"] = format_timestamp(occurred_at)
    label_list = sorted(labels, key=lambda label: label.criterion)
    if label_list:
        record["labels"] = [
            {"criterion": label.criterion, "verdict": label.verdict, "critique": label.critique}
            if label.critique
            else {"criterion": label.criterion, "verdict": label.verdict}
            for label in label_list
        ]
    note_list = list(notes)
    if note_list:
        record["notes"] = [
            {"text": note.text, "failure_modes": sorted(note.failure_modes)} if note.failure_modes else note.text
            for note in note_list
        ]
    feedback_list = [item.as_dict() for item in feedback]
    if feedback_list:
        record["feedback"] = feedback_list
    if reference is not None:
        record["reference"] = reference
    return record


def csv_row(record: dict[str, Any]) -> list[str]:
    """A serialised record as CSV cells in FIELDS order; JSON-valued fields as compact JSON text."""
    cells: list[str] = []
    for name in FIELDS:
        value = record.get(name)
        if value is None:
            cells.append("")
        elif name == "reference":
            cells.append(reference_cell(value))
        elif name in JSON_COLUMNS:
            cells.append(dumps(value))
        else:
            cells.append(str(value))
    return cells


# --- converters for published datasets -------------------------------------------------------------------------


def from_binarized(obj: dict[str, Any], criterion: str) -> dict[str, Any]:
    """A row of a "binarized" benchmark file (FELM, FaithBench) as a trace record.

    Those files carry one top-level `label`/`critique` and their own metadata keys; the trace format stays strict,
    so they are mapped here: the label becomes a label for `criterion`, and `meta`, `task`, `domain` and
    `source_dataset` go into metadata. A missing value that pandas wrote as NaN becomes absent.
    """

    def present(value: object) -> object:
        return None if isinstance(value, float) and math.isnan(value) else value

    record: dict[str, Any] = {"id": obj.get("id")}
    for name in ("input", "output", "context"):
        value = present(obj.get(name))
        if value is not None:
            record[name] = value
    metadata = dict(obj.get("meta") or {})
    for name in ("source_dataset", "task", "domain"):
        if obj.get(name) is not None:
            metadata[name] = obj[name]
    if metadata:
        record["metadata"] = metadata
    if obj.get("source_dataset"):
        record["source"] = str(obj["source_dataset"])[:MAX_SOURCE_CHARS]
    label = obj.get("label")
    if label is not None:
        record["labels"] = [{"criterion": criterion, "verdict": label, "critique": present(obj.get("critique"))}]
    return record
