"""File formats of the failure taxonomy: CSV cell safety, the codebook file and the notes export read back (CSV or
JSON). No Django here.

A codebook file lists failure modes by `name` with an optional `definition`: a CSV with those columns, or a JSON
list of objects with those keys. The other columns of the modes export (counts, shares, ids) are accepted and
ignored, so an export of one project can seed the codebook of another. A notes file is the notes export: its
`note_id` is ignored, `created_at` is optional. Errors name the row: in a CSV the header is
row 1, as a spreadsheet numbers it (a cell with line breaks is still one row); in JSON row N is the N-th object.

CSV cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a carriage return) are written
with a leading apostrophe, which spreadsheets show as "this is text"; `csv_unescape` takes it off again, so a
codebook exported as CSV and imported back keeps its names exactly.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

# Cells starting with these are formulas to Excel, LibreOffice and Google Sheets (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# Joins a note's failure modes in one CSV cell; the JSON export carries a real list instead. A mode name that
# itself contains "; " cannot be told apart in the CSV cell — use the JSON export when that matters.
CSV_LIST_SEPARATOR = "; "

# The modes export, one row per failure mode, in column order.
MODE_COLUMNS = (
    "id",
    "name",
    "definition",
    "retired",
    "merged_into",
    "trace_count",
    "note_count",
    "share_of_reviewed_traces",
    "share_of_failing_traces",
)
# The notes export, one row per note.
NOTE_COLUMNS = ("note_id", "trace_external_id", "author", "created_at", "text", "failure_modes")

CODEBOOK_COLUMNS = ("name", "definition")
# Columns of the modes export that a codebook import reads past: they describe counts, not the codebook.
IGNORED_CODEBOOK_COLUMNS = tuple(column for column in MODE_COLUMNS if column not in CODEBOOK_COLUMNS)
CODEBOOK_FORMATS = ("csv", "json")


def csv_safe(text: str) -> str:
    """The text as a CSV cell that no spreadsheet evaluates: a leading apostrophe when it would start a formula.

    Apostrophes already leading a formula-like text get one more, so `csv_unescape` is an exact inverse."""
    if text.lstrip("'").startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def csv_unescape(cell: str) -> str:
    """Undo `csv_safe`: drop the one apostrophe it adds, and nothing from any other cell."""
    if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_TRIGGERS):
        return cell[1:]
    return cell


def join_names(names: Iterable[str]) -> str:
    return CSV_LIST_SEPARATOR.join(names)


def clean_name(name: str) -> str:
    """A mode name as the codebook stores it: surrounding space dropped, inner runs of space made one."""
    return " ".join(name.split())


def name_key(name: str) -> str:
    """Names that differ only in case or spacing are the same failure mode."""
    return clean_name(name).casefold()


class TaxonomyFileError(ValueError):
    """The file as a whole cannot be read (empty, not UTF-8, malformed, a bad header); nothing is imported."""


@dataclass(frozen=True)
class RowError:
    row: int
    message: str

    def __str__(self) -> str:
        return f"row {self.row}: {self.message}"


@dataclass(frozen=True)
class CodebookEntry:
    row: int
    name: str
    # None when the file has no definition for the mode (no such column or key, or a blank cell).
    definition: str | None


def _text_problem(value: str) -> str | None:
    # PostgreSQL text cannot hold NUL, and an unpaired surrogate (a JSON "\ud800") cannot be encoded as UTF-8.
    if "\x00" in value:
        return "contains a NUL character (\\u0000), which cannot be stored"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"contains an unpaired surrogate at character {exc.start + 1}"
    return None


def _entry(row: int, name: object, definition: object, *, max_name_chars: int) -> CodebookEntry | RowError:
    if name is None or (isinstance(name, str) and not name.strip()):
        return RowError(row, "the name is missing")
    if not isinstance(name, str):
        return RowError(row, f"name: expected text, got {type(name).__name__}")
    if definition is not None and not isinstance(definition, str):
        return RowError(row, f"definition: expected text, got {type(definition).__name__}")
    for field, value in (("name", name), ("definition", definition)):
        problem = _text_problem(value) if value is not None else None
        if problem:
            return RowError(row, f"{field} {problem}")
    name = clean_name(name)
    if len(name) > max_name_chars:
        return RowError(row, f"the name is {len(name)} characters long; the limit is {max_name_chars}")
    definition = definition.strip() if definition is not None else ""
    return CodebookEntry(row=row, name=name, definition=definition or None)


def _decode(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TaxonomyFileError(f"the file is not UTF-8 text (invalid byte at position {exc.start + 1})") from None
    if not text.strip():
        raise TaxonomyFileError("the file is empty")
    return text


@dataclass(frozen=True)
class _Shape:
    """What one kind of taxonomy file holds, and the words its errors use."""

    columns: tuple[str, ...]
    required: tuple[str, ...]
    # Columns of the matching export that an import reads past.
    ignored: tuple[str, ...]
    file_words: str  # "a codebook has the columns …"
    item_words: str  # "a failure mode has …"
    export_words: str  # "the other columns of the … export are read past"
    item_example: str


CODEBOOK_SHAPE = _Shape(
    columns=CODEBOOK_COLUMNS,
    required=("name",),
    ignored=IGNORED_CODEBOOK_COLUMNS,
    file_words="a codebook",
    item_words="a failure mode",
    export_words="failure-modes",
    item_example='{"name": "…", "definition": "…"}',
)


def _csv_records(text: str, shape: _Shape) -> list[tuple[int, dict[str, str]] | RowError]:
    """(row, {column: cell}) for each non-blank CSV row, the formula apostrophes taken off; RowError for a row
    with more cells than the header. Raises TaxonomyFileError for a bad header or malformed CSV."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [cell.strip().lower() for cell in next(reader)]
    except csv.Error as exc:
        raise TaxonomyFileError(f"row 1: the CSV header cannot be read: {exc}") from None
    expected = ", ".join(shape.columns)
    for position, column in enumerate(header, start=1):
        if not column:
            raise TaxonomyFileError(f"row 1: column {position} has no name; expected {expected}")
        if column not in shape.columns + shape.ignored:
            raise TaxonomyFileError(
                f"row 1: unknown column “{column}”; {shape.file_words} has the columns {expected}"
                f" (the other columns of the {shape.export_words} export are read past)"
            )
        if header.count(column) > 1:
            raise TaxonomyFileError(f"row 1: the column “{column}” appears more than once")
    for column in shape.required:
        if column not in header:
            raise TaxonomyFileError(f"row 1: there is no “{column}” column (the header is: {', '.join(header)})")
    kept = [(at, column) for at, column in enumerate(header) if column in shape.columns]

    records: list[tuple[int, dict[str, str]] | RowError] = []
    row = 1
    while True:
        first_line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # After a malformed quote the reader cannot say where the next row starts, so the file stops here.
            raise TaxonomyFileError(f"row {row + 1} (from line {first_line}): malformed CSV: {exc}") from None
        row += 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            records.append(RowError(row, f"{len(cells)} cells, but the header has {len(header)} columns"))
            continue
        # A row may stop early (spreadsheets drop trailing empty cells): the missing cells are empty.
        cells += [""] * (len(header) - len(cells))
        records.append((row, {column: csv_unescape(cells[at]) for at, column in kept}))
    return records


def _json_records(text: str, shape: _Shape) -> list[tuple[int, dict[str, object]] | RowError]:
    """(row, object without the ignored keys) for each item of a JSON list; RowError for an item that is not an
    object or has an unknown key. Raises TaxonomyFileError when the text is not a JSON list."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TaxonomyFileError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise TaxonomyFileError("not valid JSON: nested too deeply") from None
    if not isinstance(value, list):
        raise TaxonomyFileError(f"expected a JSON list of {shape.item_words[2:]}s, like [{shape.item_example}]")
    first = shape.required[0]
    records: list[tuple[int, dict[str, object]] | RowError] = []
    for row, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            records.append(RowError(row, f'expected an object like {{"{first}": "…"}}, got {type(item).__name__}'))
            continue
        unknown = sorted(key for key in item if key not in shape.columns + shape.ignored)
        if unknown:
            listed = ", ".join(f"“{key}”" for key in unknown)
            records.append(RowError(row, f"unknown key {listed}; {shape.item_words} has {', '.join(shape.columns)}"))
            continue
        records.append((row, {key: item[key] for key in shape.columns if key in item}))
    return records


def _records(data: bytes, fmt: str, shape: _Shape) -> list[tuple[int, dict[str, Any]] | RowError]:
    if fmt not in CODEBOOK_FORMATS:
        raise TaxonomyFileError(f"unknown format “{fmt}”; choose {' or '.join(CODEBOOK_FORMATS)}")
    text = _decode(data)
    records = _csv_records(text, shape) if fmt == "csv" else _json_records(text, shape)
    if not records:
        raise TaxonomyFileError(f"the file lists no {shape.item_words[2:]}s")
    return records


def parse_codebook(data: bytes, *, fmt: str, max_name_chars: int) -> tuple[list[CodebookEntry], list[RowError]]:
    """The failure modes a codebook file lists, and the errors of its bad rows, in row order.

    A name repeated in the file (ignoring case and spacing) is an error on every row after the first. Raises
    TaxonomyFileError when the file as a whole cannot be read."""
    results = [
        record
        if isinstance(record, RowError)
        else _entry(record[0], record[1].get("name"), record[1].get("definition"), max_name_chars=max_name_chars)
        for record in _records(data, fmt, CODEBOOK_SHAPE)
    ]

    entries: list[CodebookEntry] = []
    errors: list[RowError] = []
    first_row: dict[str, int] = {}
    for result in results:
        if isinstance(result, RowError):
            errors.append(result)
            continue
        key = name_key(result.name)
        if key in first_row:
            errors.append(RowError(result.row, f"“{result.name}” is already named on row {first_row[key]}"))
            continue
        first_row[key] = result.row
        entries.append(result)
    return entries, errors


# --- the notes export, read back --------------------------------------------------------------------------------

NOTES_SHAPE = _Shape(
    columns=("trace_external_id", "author", "text", "failure_modes", "created_at"),
    required=("trace_external_id", "author", "text"),
    ignored=("note_id",),
    file_words="a notes file",
    item_words="a note",
    export_words="notes",
    item_example='{"trace_external_id": "…", "author": "…", "text": "…", "failure_modes": ["…"]}',
)


@dataclass(frozen=True)
class NoteEntry:
    row: int
    trace_external_id: str
    author: str
    text: str
    failure_modes: tuple[str, ...]
    # None when the file does not say; the import then uses the time of import.
    created_at: datetime | None


def _required_text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError(f"{key} is missing")
    if not isinstance(value, str):
        raise ValueError(f"{key}: expected text, got {type(value).__name__}")
    problem = _text_problem(value)
    if problem:
        raise ValueError(f"{key} {problem}")
    return value


def _mode_names(value: object, *, max_name_chars: int) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):  # a CSV cell
        value = value.split(CSV_LIST_SEPARATOR.strip())
    if not isinstance(value, list):
        raise ValueError(f"failure_modes: expected a list of names, got {type(value).__name__}")
    names: dict[str, str] = {}
    for position, name in enumerate(value, start=1):
        if not isinstance(name, str):
            raise ValueError(f"failure_modes[{position}]: expected a name, got {type(name).__name__}")
        problem = _text_problem(name)
        if problem:
            raise ValueError(f"failure_modes[{position}] {problem}")
        name = clean_name(name)
        if len(name) > max_name_chars:
            raise ValueError(
                f"failure mode “{name[:40]}…” is {len(name)} characters long; the limit is {max_name_chars}"
            )
        if name:
            names.setdefault(name_key(name), name)
    return tuple(names.values())


def _timestamp(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    try:
        parsed = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        parsed = None
    if parsed is None:
        raise ValueError(f"created_at: {value!r} is not an ISO 8601 timestamp like 2026-11-01T12:00:00Z")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _note_entry(
    row: int, record: dict[str, Any], *, max_name_chars: int, max_text_chars: int, max_id_chars: int
) -> NoteEntry | RowError:
    try:
        trace = _required_text(record, "trace_external_id")
        if len(trace) > max_id_chars:
            raise ValueError(f"trace_external_id is {len(trace)} characters long; the limit is {max_id_chars}")
        author = _required_text(record, "author").strip()
        text = _required_text(record, "text")
        if len(text) > max_text_chars:
            raise ValueError(f"text is {len(text):,} characters long; the limit is {max_text_chars:,}")
        modes = _mode_names(record.get("failure_modes"), max_name_chars=max_name_chars)
        created_at = _timestamp(record.get("created_at"))
    except ValueError as exc:
        return RowError(row, str(exc))
    return NoteEntry(row, trace, author, text, modes, created_at)


def parse_notes_file(
    data: bytes, *, fmt: str, max_name_chars: int, max_text_chars: int, max_id_chars: int
) -> tuple[list[NoteEntry], list[RowError]]:
    """The notes a notes export (CSV or JSON) lists, and the errors of its bad rows, in row order. In CSV the
    failure modes cell is split at ";" (the export joins with "; "). The same text twice on one trace is an error
    on the later row. Raises TaxonomyFileError when the file as a whole cannot be read."""
    entries: list[NoteEntry] = []
    errors: list[RowError] = []
    first_row: dict[tuple[str, str], int] = {}
    for record in _records(data, fmt, NOTES_SHAPE):
        if isinstance(record, RowError):
            errors.append(record)
            continue
        entry = _note_entry(
            *record, max_name_chars=max_name_chars, max_text_chars=max_text_chars, max_id_chars=max_id_chars
        )
        if isinstance(entry, RowError):
            errors.append(entry)
            continue
        key = (entry.trace_external_id, entry.text)
        if key in first_row:
            errors.append(RowError(entry.row, f"the same note on the same trace is already on row {first_row[key]}"))
            continue
        first_row[key] = entry.row
        entries.append(entry)
    return entries, errors


def codebook_format_for(filename: str) -> str:
    """CSV or JSON by the file's extension; JSON also when the name says nothing (e.g. standard input)."""
    return "csv" if filename.lower().endswith(".csv") else "json"
