"""Readers for trace files written by other tools, and for the native shape as Parquet. No Django here.

Each reader yields `trace_format.RawRecord`s holding native trace records (or the reason a line or a trace cannot
be read), so everything after reading — validation by `parse_record`, batching, the COPY path — is the one path
every import takes:

- `otlp-json`: the OpenTelemetry Collector's file exporter, one OTLP/JSON export request per line;
- `phoenix`: Arize Phoenix's span dataframe (`px.Client().get_spans_dataframe()`) saved as Parquet or JSONL;
- `langfuse`: Langfuse traces with their observations, as the public API / UI export writes them (JSONL, one trace
  per line, or one JSON array / `{"data": [...]}` document);
- `parquet`: what `export_traces --format parquet` writes.

Span files need every span of a trace before the trace can be assembled, and the spans of one trace may be spread
over the whole file. They are spilled to a temporary SQLite file as they are read (memory stays flat however big
the file), then assembled trace by trace with `annotation.otel.conventions.trace_record`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any, BinaryIO

from annotation.feedback import feedback_from_langfuse_scores
from annotation.otel.conventions import NoRootSpan, trace_record
from annotation.otel.spans import OtlpDecodeError, SpanData, request_from_json, spans_from_request
from annotation.trace_format import (
    FIELDS,
    JSON_COLUMNS,
    UTF8_BOM,
    FormatError,
    RawRecord,
    RecordError,
    loads,
    reference_from_cell,
    text_lines,
)

# One line of a span file holds a whole export batch (the Collector writes up to thousands of spans per line), so
# it may be far larger than one trace.
MAX_SPAN_LINE_BYTES = 256 << 20
PARQUET_MAGIC = b"PAR1"
PARQUET_BATCH_ROWS = 2000


def read_peer(stream: BinaryIO, *, fmt: str, max_bytes: int) -> Iterator[RawRecord]:
    if fmt == "otlp-json":
        return read_otlp_json(stream, max_bytes=max_bytes)
    if fmt == "phoenix":
        return read_phoenix(stream, max_bytes=max_bytes)
    if fmt == "langfuse":
        return read_langfuse(stream, max_bytes=max_bytes)
    if fmt == "parquet":
        return read_parquet(stream, max_bytes=max_bytes)
    raise FormatError(f"unknown format {fmt!r}")


# --- spans spilled to disk, grouped by trace -------------------------------------------------------------------


_SPAN_FIELDS = tuple(item.name for item in dataclasses.fields(SpanData))


class _SpanSpill:
    """Spans by trace id in a temporary SQLite file; traces come back in the order their first span was read."""

    def __init__(self) -> None:
        handle, self.path = tempfile.mkstemp(prefix="evalstudio-spans-", suffix=".sqlite3")
        os.close(handle)
        self.db = sqlite3.connect(self.path)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE span (trace_id TEXT, line INTEGER, data TEXT)")
        self.db.execute("CREATE TABLE trace (trace_id TEXT PRIMARY KEY, seq INTEGER)")
        self.count = 0

    def add(self, span: SpanData, line: int) -> None:
        self.count += 1
        self.db.execute("INSERT OR IGNORE INTO trace VALUES (?, ?)", (span.trace_id, self.count))
        self.db.execute(
            "INSERT INTO span VALUES (?, ?, ?)",
            # Shallow: dataclasses.asdict deep-copies every attribute and cost a quarter of the import time.
            (span.trace_id, line, json.dumps({name: getattr(span, name) for name in _SPAN_FIELDS}, ensure_ascii=False)),
        )

    def traces(self) -> Iterator[tuple[str, list[int], list[SpanData]]]:
        self.db.execute("CREATE INDEX span_trace ON span (trace_id)")
        for (trace_id,) in self.db.execute("SELECT trace_id FROM trace ORDER BY seq").fetchall():
            rows = self.db.execute("SELECT line, data FROM span WHERE trace_id = ? ORDER BY rowid", (trace_id,))
            lines: list[int] = []
            spans: list[SpanData] = []
            for line, data in rows:
                if line not in lines:
                    lines.append(line)
                spans.append(SpanData(**json.loads(data)))
            yield trace_id, lines, spans

    def close(self) -> None:
        self.db.close()
        os.unlink(self.path)


def _assembled(spill: _SpanSpill, where: str) -> Iterator[RawRecord]:
    """One record per trace of the spill (or one rejection per trace without a root), at its first line."""
    for trace_id, lines, spans in spill.traces():
        first = lines[0]
        shown = ", ".join(str(line) for line in lines[:5]) + (", …" if len(lines) > 5 else "")
        try:
            record = trace_record(spans)
        except NoRootSpan:
            yield RawRecord(
                first,
                error=f"trace {trace_id} ({where} {shown}): none of its {len(spans)} spans is a root span "
                "(a span without a parent); the trace cannot be assembled",
            )
            continue
        except (TypeError, ValueError) as exc:
            yield RawRecord(first, error=f"trace {trace_id} ({where} {shown}): {exc}")
            continue
        yield RawRecord(first, value=record, size=len(json.dumps(record, ensure_ascii=False).encode("utf-8")))


def _text_lines(stream: BinaryIO, limit: int) -> Iterator[tuple[int, str | None, str | None, int]]:
    """(line, text, error, size) for each non-blank line (`trace_format.text_lines` without the blank ones)."""
    return (line for line in text_lines(stream, limit) if line[1] != "")


# --- otlp-json ---------------------------------------------------------------------------------------------------


def read_otlp_json(stream: BinaryIO, *, max_bytes: int) -> Iterator[RawRecord]:
    """The Collector's file exporter output: each line an OTLP/JSON ExportTraceServiceRequest. A line that does
    not decode and each unusable span are rejected with their line; spans are grouped by trace across lines."""
    spill = _SpanSpill()
    try:
        seen_any = False
        for number, text, error, size in _text_lines(stream, max(max_bytes, MAX_SPAN_LINE_BYTES)):
            seen_any = True
            if error is not None:
                yield RawRecord(number, error=error, size=size)
                continue
            try:
                spans, rejected = spans_from_request(request_from_json(text))
            except OtlpDecodeError as exc:
                yield RawRecord(number, error=str(exc), size=size)
                continue
            for rejection in rejected:
                yield RawRecord(number, error=f"span {rejection.index}: {rejection.reason}")
            for span in spans:
                spill.add(span, number)
        if not seen_any:
            raise FormatError("the file is empty")
        yield from _assembled(spill, "lines")
    finally:
        spill.close()


# --- phoenix -----------------------------------------------------------------------------------------------------


def read_phoenix(stream: BinaryIO, *, max_bytes: int) -> Iterator[RawRecord]:
    """Phoenix's span dataframe, one row per span: Parquet (by its magic bytes) or JSONL (`df.to_json(orient=
    "records", lines=True)`)."""
    spill = _SpanSpill()
    try:
        head = stream.read(4)
        if not head:
            raise FormatError("the file is empty")
        if head == PARQUET_MAGIC:
            rows = _parquet_rows(stream)
        else:
            rows = _jsonl_rows(_Prefixed(head, stream), max(max_bytes, MAX_SPAN_LINE_BYTES))
        for number, row, error in rows:
            if error is not None:
                yield RawRecord(number, error=error)
                continue
            try:
                spill.add(_phoenix_span(row), number)
            except ValueError as exc:
                yield RawRecord(number, error=str(exc))
        yield from _assembled(spill, "rows")
    finally:
        spill.close()


_KINDS = {"LLM", "CHAIN", "TOOL", "RETRIEVER", "EMBEDDING", "AGENT", "RERANKER", "GUARDRAIL", "EVALUATOR"}


def _phoenix_span(row: dict[str, Any]) -> SpanData:
    trace_id = _present(row.get("context.trace_id"))
    span_id = _present(row.get("context.span_id"))
    if not trace_id or not span_id:
        raise ValueError("context.trace_id and context.span_id are required")
    attributes: dict[str, Any] = {}
    nested = _present(row.get("attributes"))
    if isinstance(nested, str):
        nested = loads(nested)
    if isinstance(nested, dict):
        _flatten("", nested, attributes)
    for column, value in row.items():
        if column.startswith("attributes.") and _present(value) is not None:
            _flatten(column.removeprefix("attributes."), value, attributes)
    kind = _present(row.get("span_kind"))
    if isinstance(kind, str) and kind.upper() in _KINDS:
        attributes.setdefault("openinference.span.kind", kind.upper())
    start = _nanoseconds(row.get("start_time"), "start_time")
    end = _nanoseconds(row.get("end_time"), "end_time") if _present(row.get("end_time")) is not None else start
    events = _present(row.get("events"))
    if isinstance(events, str):
        events = loads(events)
    status = _present(row.get("status_code"))
    return SpanData(
        trace_id=str(trace_id),
        span_id=str(span_id),
        parent_span_id=str(_present(row.get("parent_id")) or ""),
        name=str(_present(row.get("name")) or ""),
        kind="internal",
        start_ns=start,
        end_ns=end,
        status_code=str(status).lower() if status else "unset",
        status_message=str(_present(row.get("status_message")) or ""),
        attributes=attributes,
        events=[_phoenix_event(event) for event in events or [] if isinstance(event, dict)],
    )


def _phoenix_event(event: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    _flatten("", event.get("attributes") or {}, attributes)
    timestamp = event.get("timestamp")
    return {
        "name": str(event.get("name") or ""),
        "time_ns": _nanoseconds(timestamp, "events.timestamp") if timestamp else 0,
        "attributes": attributes,
    }


def _flatten(prefix: str, value: Any, into: dict[str, Any]) -> None:
    """Phoenix keeps lists of structured values (messages, documents, tool calls) as lists of dicts; the
    conventions read them flattened as OTel attributes are (`llm.input_messages.0.message.role`)."""
    value = _present(value)
    if value is None:
        return
    if hasattr(value, "tolist"):  # numpy arrays from Parquet lists
        value = value.tolist()
    if prefix == "metadata" and isinstance(value, dict):
        into[prefix] = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, into)
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        for index, item in enumerate(value):
            _flatten(f"{prefix}.{index}", item, into)
    else:
        into[prefix] = value


def _present(value: Any) -> Any:
    """None for the missing values pandas and Parquet write (None, NaN, NaT)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ in ("NaTType", "NAType"):
        return None
    return value


def _nanoseconds(value: Any, where: str) -> int:
    value = _present(value)
    if value is None:
        raise ValueError(f"{where}: required")
    if hasattr(value, "value") and type(value).__name__ == "Timestamp":  # pandas keeps nanoseconds
        return int(value.value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        delta = value - datetime(1970, 1, 1, tzinfo=UTC)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, int | float) and not isinstance(value, bool):
        # pandas' to_json writes epoch milliseconds by default.
        return int(value * 1_000_000)
    if isinstance(value, str):
        try:
            return _nanoseconds(datetime.fromisoformat(value.strip().replace("Z", "+00:00")), where)
        except ValueError:
            raise ValueError(f"{where}: not an ISO 8601 date-time: {value[:40]!r}") from None
    raise ValueError(f"{where}: not a time: {type(value).__name__}")


def _parquet_rows(stream: BinaryIO) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    import pyarrow as pa  # heavy; only these formats need it
    import pyarrow.parquet as pq

    if not stream.seekable():
        raise FormatError("a Parquet file must be read from a file, not from standard input")
    stream.seek(0)
    try:
        parquet = pq.ParquetFile(stream)
    except (pa.ArrowException, OSError) as exc:
        raise FormatError(f"not a Parquet file: {exc}") from None
    number = 0
    for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            number += 1
            yield number, row, None


def _jsonl_rows(stream: BinaryIO, limit: int) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    for number, text, error, _size in _text_lines(stream, limit):
        if error is not None:
            yield number, None, error
            continue
        try:
            value = loads(text)
        except ValueError as exc:
            yield number, None, f"invalid JSON: {exc}"
            continue
        if not isinstance(value, dict):
            yield number, None, "expected a JSON object (one span per line)"
            continue
        yield number, value, None


class _Prefixed:
    """A stream with bytes already read put back in front (for `_lines`, which reads with readline)."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self.head = head
        self.stream = stream

    def readline(self, limit: int = -1) -> bytes:
        if not self.head:
            return self.stream.readline(limit)
        head, self.head = self.head, b""
        if b"\n" in head:
            line, rest = head.split(b"\n", 1)
            self.head = rest
            return line + b"\n"
        return head + self.stream.readline(-1 if limit < 0 else max(limit - len(head), 1))


# --- langfuse ----------------------------------------------------------------------------------------------------


def read_langfuse(stream: BinaryIO, *, max_bytes: int) -> Iterator[RawRecord]:
    """Langfuse traces with their observations. JSONL (a trace, or an API page `{"data": [...]}`, per line) is
    read line by line; a file that is one JSON array (or one pretty-printed object) is read whole."""
    first = stream.read(1)
    while first and first.isspace():
        first = stream.read(1)
    if not first:
        raise FormatError("the file is empty")
    rest = _Prefixed(first, stream)
    if first == b"[":
        yield from _langfuse_document(first + stream.read(), max_bytes)
        return
    line_one = rest.readline(-1)
    try:
        loads(line_one.strip().removeprefix(UTF8_BOM))
    except ValueError:
        # Not JSON on its own: one pretty-printed document.
        yield from _langfuse_document(line_one + stream.read(), max_bytes)
        return
    lines = _Prefixed(line_one, stream)
    for number, text, error, size in _text_lines(lines, max(max_bytes, MAX_SPAN_LINE_BYTES)):
        if error is not None:
            yield RawRecord(number, error=error, size=size)
            continue
        try:
            value = loads(text)
        except ValueError as exc:
            yield RawRecord(number, error=f"invalid JSON: {exc}", size=size)
            continue
        items = value["data"] if isinstance(value, dict) and isinstance(value.get("data"), list) else [value]
        for item in items:
            yield _langfuse_raw(number, item)


def _langfuse_document(data: bytes, max_bytes: int) -> Iterator[RawRecord]:
    try:
        value = loads(data.removeprefix(UTF8_BOM))
    except ValueError as exc:
        raise FormatError(f"not a Langfuse export: invalid JSON: {exc}") from None
    if isinstance(value, dict) and isinstance(value.get("data"), list):
        value = value["data"]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise FormatError("not a Langfuse export: expected traces (a list, or an object with data)")
    for index, item in enumerate(value, start=1):
        # In a whole document, "line" is the trace's 1-based position.
        yield _langfuse_raw(index, item)


def _langfuse_raw(number: int, trace: Any) -> RawRecord:
    try:
        record = langfuse_record(trace)
    except ValueError as exc:
        return RawRecord(number, error=str(exc))
    return RawRecord(number, value=record, size=len(json.dumps(record, ensure_ascii=False).encode("utf-8")))


def langfuse_record(trace: Any) -> dict[str, Any]:
    """One Langfuse trace (with `observations` as objects) as a native record. Mapped through spans carrying the
    `langfuse.*` attributes the Langfuse SDK sends over OTLP, so both ways in read a trace the same way."""
    if not isinstance(trace, dict):
        raise ValueError("expected a Langfuse trace object")
    trace_id = trace.get("id")
    if not isinstance(trace_id, str) or not trace_id:
        raise ValueError("trace.id: required (a Langfuse trace id)")
    start = _nanoseconds(trace.get("timestamp") or trace.get("createdAt"), f"trace {trace_id}: timestamp")
    observations = trace.get("observations") or []
    if not isinstance(observations, list):
        raise ValueError(f"trace {trace_id}: observations: expected a list")
    root_id = "langfuse-trace"
    attributes: dict[str, Any] = {}
    for key, name in (("input", "input"), ("output", "output")):
        if trace.get(key) is not None:
            attributes[f"langfuse.trace.{name}"] = json.dumps(trace[key], ensure_ascii=False)
    for key, name in (
        ("sessionId", "langfuse.session.id"),
        ("userId", "langfuse.user.id"),
        ("name", "langfuse.trace.name"),
    ):
        if trace.get(key):
            attributes[name] = str(trace[key])
    if isinstance(trace.get("metadata"), dict):
        for key, value in trace["metadata"].items():
            attributes[f"langfuse.trace.metadata.{key}"] = value
    if isinstance(trace.get("tags"), list) and trace["tags"]:
        attributes["langfuse.trace.tags"] = [str(tag) for tag in trace["tags"]]
    spans: list[SpanData] = []
    end = start
    for index, observation in enumerate(observations):
        if isinstance(observation, str):
            continue  # the list endpoint gives observation ids only: the trace keeps its input and output
        if not isinstance(observation, dict):
            raise ValueError(f"trace {trace_id}: observations[{index}]: expected an object")
        span = _observation_span(trace_id, root_id, observation, f"trace {trace_id}: observations[{index}]")
        end = max(end, span.end_ns)
        spans.append(span)
    latency = trace.get("latency")
    if isinstance(latency, int | float) and not isinstance(latency, bool):
        end = start + int(latency * 1e9)
    spans.append(
        SpanData(
            trace_id=trace_id,
            span_id=root_id,
            parent_span_id="",
            name=str(trace.get("name") or "trace"),
            kind="internal",
            start_ns=start,
            end_ns=end,
            attributes=attributes,
        )
    )
    record = trace_record(spans)
    metadata = record["metadata"]
    for key in ("otel.trace_id", "otel.root_span", "otel.span_count"):
        metadata.pop(key, None)
    metadata["langfuse.trace_id"] = trace_id
    metadata["langfuse.observation_count"] = len(observations)
    scores = trace.get("scores")
    if isinstance(scores, list) and any(isinstance(score, dict) for score in scores):
        feedback = feedback_from_langfuse_scores([score for score in scores if isinstance(score, dict)])
        if feedback:
            record["feedback"] = [*record.get("feedback", []), *feedback]
    return record


def _observation_span(trace_id: str, root_id: str, observation: dict[str, Any], where: str) -> SpanData:
    observation_id = observation.get("id")
    if not isinstance(observation_id, str) or not observation_id:
        raise ValueError(f"{where}.id: required")
    start = _nanoseconds(observation.get("startTime"), f"{where}.startTime")
    end_time = observation.get("endTime")
    end = _nanoseconds(end_time, f"{where}.endTime") if end_time else start
    attributes: dict[str, Any] = {"langfuse.observation.type": str(observation.get("type") or "span").lower()}
    for key in ("input", "output"):
        if observation.get(key) is not None:
            attributes[f"langfuse.observation.{key}"] = json.dumps(observation[key], ensure_ascii=False)
    if observation.get("model"):
        attributes["langfuse.observation.model.name"] = str(observation["model"])
    usage = observation.get("usageDetails") or observation.get("usage")
    if isinstance(usage, dict):
        attributes["langfuse.observation.usage_details"] = json.dumps(
            {
                "input": usage.get("input", usage.get("promptTokens")),
                "output": usage.get("output", usage.get("completionTokens")),
                "total": usage.get("total", usage.get("totalTokens")),
            }
        )
    status = "error" if observation.get("level") == "ERROR" else "unset"
    return SpanData(
        trace_id=trace_id,
        span_id=observation_id,
        parent_span_id=str(observation.get("parentObservationId") or root_id),
        name=str(observation.get("name") or observation_id),
        kind="internal",
        start_ns=start,
        end_ns=max(end, start),
        status_code=status,
        status_message=str(observation.get("statusMessage") or ""),
        attributes=attributes,
    )


# --- native parquet ----------------------------------------------------------------------------------------------


def read_parquet(stream: BinaryIO, *, max_bytes: int) -> Iterator[RawRecord]:
    """The native columns as `export_traces --format parquet` writes them (JSON-valued columns as JSON text);
    "line" is the 1-based row."""
    head = stream.read(4)
    if not head:
        raise FormatError("the file is empty")
    if head != PARQUET_MAGIC:
        raise FormatError("not a Parquet file (it does not start with PAR1)")
    for number, row, _error in _parquet_rows(stream):
        assert row is not None
        unknown = [name for name in row if name not in FIELDS]
        if unknown:
            raise FormatError(f"unknown Parquet column {unknown[0]!r}; the native columns are {', '.join(FIELDS)}")
        record: dict[str, Any] = {}
        error = None
        for name, value in row.items():
            if value is None:
                continue
            if name in JSON_COLUMNS and isinstance(value, str):
                try:
                    value = loads(value)
                except ValueError as exc:
                    error = f"{name}: invalid JSON in cell: {exc}"
                    break
            elif name == "reference" and isinstance(value, str):
                try:
                    value = reference_from_cell(value)
                except RecordError as exc:
                    error = str(exc)
                    break
            record[name] = value
        if error is not None:
            yield RawRecord(number, error=error)
            continue
        yield RawRecord(number, value=record, size=len(json.dumps(record, ensure_ascii=False).encode("utf-8")))
