"""File formats of the failure taxonomy: CSV cell safety and the codebook file (CSV or JSON). No Django here.

A codebook file lists failure modes by `name` with an optional `definition`: a CSV with those columns, or a JSON
list of objects with those keys. The other columns of the modes export (counts, shares, ids) are accepted and
ignored, so an export of one project can seed the codebook of another. Errors name the row: in a CSV the header is
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


class CodebookFileError(ValueError):
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
        raise CodebookFileError(f"the file is not UTF-8 text (invalid byte at position {exc.start + 1})") from None
    if not text.strip():
        raise CodebookFileError("the file is empty")
    return text


def _read_csv(text: str, *, max_name_chars: int) -> list[CodebookEntry | RowError]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    try:
        header = [cell.strip().lower() for cell in next(reader)]
    except csv.Error as exc:
        raise CodebookFileError(f"row 1: the CSV header cannot be read: {exc}") from None
    known = CODEBOOK_COLUMNS + IGNORED_CODEBOOK_COLUMNS
    for position, column in enumerate(header, start=1):
        if not column:
            raise CodebookFileError(f"row 1: column {position} has no name; expected {', '.join(CODEBOOK_COLUMNS)}")
        if column not in known:
            raise CodebookFileError(
                f"row 1: unknown column “{column}”; a codebook has the columns {', '.join(CODEBOOK_COLUMNS)}"
                " (the other columns of the failure-modes export are read past)"
            )
        if header.count(column) > 1:
            raise CodebookFileError(f"row 1: the column “{column}” appears more than once")
    if "name" not in header:
        raise CodebookFileError(f"row 1: there is no “name” column (the header is: {', '.join(header)})")
    name_at = header.index("name")
    definition_at = header.index("definition") if "definition" in header else None

    results: list[CodebookEntry | RowError] = []
    row = 1
    while True:
        first_line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            # After a malformed quote the reader cannot say where the next row starts, so the file stops here.
            raise CodebookFileError(f"row {row + 1} (from line {first_line}): malformed CSV: {exc}") from None
        row += 1
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) > len(header):
            results.append(RowError(row, f"{len(cells)} cells, but the header has {len(header)} columns"))
            continue
        # A row may stop early (spreadsheets drop trailing empty cells): the missing cells are empty.
        cells += [""] * (len(header) - len(cells))
        definition = csv_unescape(cells[definition_at]) if definition_at is not None else None
        results.append(_entry(row, csv_unescape(cells[name_at]), definition, max_name_chars=max_name_chars))
    return results


def _read_json(text: str, *, max_name_chars: int) -> list[CodebookEntry | RowError]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CodebookFileError(f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    except RecursionError:
        raise CodebookFileError("not valid JSON: nested too deeply") from None
    if not isinstance(value, list):
        raise CodebookFileError('expected a JSON list of failure modes, like [{"name": "…", "definition": "…"}]')
    known = set(CODEBOOK_COLUMNS + IGNORED_CODEBOOK_COLUMNS)
    results: list[CodebookEntry | RowError] = []
    for row, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            results.append(RowError(row, f'expected an object like {{"name": "…"}}, got {type(item).__name__}'))
            continue
        unknown = sorted(key for key in item if key not in known)
        if unknown:
            listed = ", ".join(f"“{key}”" for key in unknown)
            results.append(RowError(row, f"unknown key {listed}; a failure mode has {', '.join(CODEBOOK_COLUMNS)}"))
            continue
        results.append(_entry(row, item.get("name"), item.get("definition"), max_name_chars=max_name_chars))
    return results


def parse_codebook(data: bytes, *, fmt: str, max_name_chars: int) -> tuple[list[CodebookEntry], list[RowError]]:
    """The failure modes a codebook file lists, and the errors of its bad rows, in row order.

    A name repeated in the file (ignoring case and spacing) is an error on every row after the first. Raises
    CodebookFileError when the file as a whole cannot be read."""
    if fmt not in CODEBOOK_FORMATS:
        raise CodebookFileError(f"unknown format “{fmt}”; choose {' or '.join(CODEBOOK_FORMATS)}")
    text = _decode(data)
    reader = _read_csv if fmt == "csv" else _read_json
    results = reader(text, max_name_chars=max_name_chars)
    if not results:
        raise CodebookFileError("the file lists no failure modes")

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


def codebook_format_for(filename: str) -> str:
    """CSV or JSON by the file's extension; JSON also when the name says nothing (e.g. standard input)."""
    return "csv" if filename.lower().endswith(".csv") else "json"
