"""The trace format on its own: readers, validation and serialisation. No database."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from annotation.trace_format import (
    FormatError,
    LabelRecord,
    NoteRecord,
    RecordError,
    content_hash,
    csv_row,
    dumps,
    from_binarized,
    parse_record,
    read_csv,
    read_jsonl,
    serialize_trace,
)

MAX = 1_000_000

AGENT = {
    "id": "t-123",
    "input": "How many reactors?",
    "output": "92",
    "messages": [
        {"role": "user", "content": "How many reactors?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "search", "arguments": '{"q": 1}'}}],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "92 reactors"},
        {"role": "assistant", "content": [{"type": "text", "text": "92"}]},
    ],
    "context": ["retrieved passage"],
    "metadata": {"model": "gpt-x", "locale": "en"},
    "session_id": "s-9",
    "task_id": "task-4",
    "trial": 2,
    "source": "production",
    "timestamp": "2026-11-01T12:00:00Z",
    "labels": [{"criterion": "factual", "verdict": "fail", "critique": "Claims 94 reactors; there are 92."}],
    "notes": ["Invents a statistic", {"text": "coded", "failure_modes": ["hallucination"]}],
}


def error_of(obj: object) -> str:
    with pytest.raises(RecordError) as info:
        parse_record(obj)
    return str(info.value)


def jsonl(text: bytes, max_bytes: int = MAX) -> list:
    return list(read_jsonl(io.BytesIO(text), max_bytes=max_bytes))


# --- parse_record ----------------------------------------------------------------------------------------------


def test_full_example_from_the_design_parses_into_every_field():
    record = parse_record(AGENT)
    assert record.external_id == "t-123"
    assert record.messages[1]["tool_calls"][0]["function"]["name"] == "search"
    assert record.context == ["retrieved passage"]
    assert record.metadata == {"model": "gpt-x", "locale": "en"}
    assert (record.session_id, record.task_id, record.trial, record.source) == ("s-9", "task-4", 2, "production")
    assert record.timestamp == datetime(2026, 11, 1, 12, tzinfo=UTC)
    assert record.labels == [LabelRecord("factual", "fail", "Claims 94 reactors; there are 92.")]
    assert record.notes == [NoteRecord("Invents a statistic"), NoteRecord("coded", ("hallucination",))]


def test_a_record_needs_input_output_or_messages():
    assert error_of({"id": "x", "metadata": {}}) == "at least one of input, output or messages is required"
    assert parse_record({"messages": [{"role": "user", "content": "hi"}]}).messages[0]["content"] == "hi"


def test_tool_call_arguments_are_json_text_or_a_json_object_stored_as_text():
    given = json.loads(json.dumps(AGENT))
    given["messages"][1]["tool_calls"][0]["function"]["arguments"] = {"q": 1}
    record = parse_record(given)
    assert record.messages[1]["tool_calls"][0]["function"]["arguments"] == '{"q":1}'
    bad = json.loads(json.dumps(AGENT))
    bad["messages"][1]["tool_calls"][0]["function"]["arguments"] = 7
    assert error_of(bad) == "messages[1].tool_calls[0].function.arguments: expected a string, got 7"


def test_trial_must_be_an_integer():
    assert error_of({"input": "x", "trial": "two"}) == 'trial: expected an integer, got "two"'
    assert error_of({"input": "x", "trial": True}) == "trial: expected an integer, got true"
    assert error_of({"input": "x", "trial": 2**40}).startswith("trial: 1099511627776 is out of range")


def test_timestamp_must_be_iso_8601_and_becomes_aware():
    assert error_of({"input": "x", "timestamp": "yesterday"}) == 'timestamp: not an ISO 8601 date-time: "yesterday"'
    offset = parse_record({"input": "x", "timestamp": "2026-11-01T14:00:00+02:00"}).timestamp
    assert offset == datetime(2026, 11, 1, 12, tzinfo=UTC)
    naive = parse_record({"input": "x", "timestamp": "2026-11-01T12:00:00"}).timestamp
    assert naive.utcoffset() == timedelta(0)


def test_unknown_top_level_field_is_rejected_with_a_suggestion():
    assert error_of({"inptu": "x", "output": "y"}) == "unknown field 'inptu' (did you mean 'input'?)"


def test_message_role_must_be_known():
    assert error_of({"messages": [{"role": "robot", "content": "x"}]}).startswith(
        'messages[0].role: expected one of assistant, developer, function, system, tool, user, got "robot"'
    )


def test_tool_message_needs_its_tool_call_id():
    assert error_of({"messages": [{"role": "tool", "content": "x"}]}) == (
        "messages[0].tool_call_id: expected a string, got null"
    )


def test_message_content_may_be_a_list_of_parts_but_text_parts_need_text():
    assert error_of({"messages": [{"role": "user", "content": [{"type": "text"}]}]}) == (
        "messages[0].content[0].text: expected a string, got null"
    )


def test_single_context_string_becomes_a_one_item_list():
    assert parse_record({"output": "x", "context": "one passage"}).context == ["one passage"]
    assert error_of({"output": "x", "context": ["ok", 3]}) == "context[1]: expected a string, got 3"


def test_metadata_must_be_an_object():
    assert error_of({"output": "x", "metadata": [1]}) == "metadata: expected an object, got a list"


def test_integer_ids_are_stringified():
    assert parse_record({"id": 42, "input": "x", "session_id": 7}).external_id == "42"


def test_labels_are_checked_and_a_criterion_may_appear_once():
    assert error_of({"input": "x", "labels": [{"criterion": "c", "verdict": "yes"}]}) == (
        'labels[0].verdict: expected "pass" or "fail", got "yes"'
    )
    twice = [{"criterion": "c", "verdict": "pass"}, {"criterion": "c", "verdict": "fail"}]
    assert error_of({"input": "x", "labels": twice}) == "labels[1].criterion: 'c' is labelled more than once"
    assert error_of({"input": "x", "labels": [{"criterion": "c", "verdict": "pass", "critque": ""}]}) == (
        "labels[0]: unknown key 'critque' (did you mean 'critique'?)"
    )


def test_notes_are_strings_or_objects_with_failure_modes():
    assert error_of({"input": "x", "notes": [3]}) == "notes[0]: expected a string or an object with text, got 3"
    assert error_of({"input": "x", "notes": [{"text": "t", "failure_modes": "m"}]}) == (
        'notes[0].failure_modes: expected a list of names, got "m"'
    )


def test_text_that_the_database_cannot_store_is_rejected_by_field():
    assert error_of({"input": "a\x00b"}) == "input: contains a NUL character (\\u0000), which cannot be stored"
    assert error_of({"input": "x", "metadata": {"k": "\ud800"}}).startswith("metadata.k: contains an unpaired")


def test_overlong_columns_are_rejected_before_the_database():
    assert error_of({"id": "x" * 256, "input": "y"}) == "id: at most 255 characters, got 256"
    assert error_of({"input": "y", "source": "s" * 65}) == "source: at most 64 characters, got 65"


def test_missing_id_becomes_a_stable_content_hash():
    first = parse_record({"input": "q", "output": "a"}).external_id
    again = parse_record({"output": "a", "input": "q", "metadata": {"other": 1}}).external_id
    assert first == again == content_hash(input="q", output="a", messages=None, context=None)
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 32
    assert parse_record({"input": "q", "output": "b"}).external_id != first


# --- JSONL reader ----------------------------------------------------------------------------------------------


def test_jsonl_reader_reports_line_numbers_and_skips_blank_lines():
    records = jsonl(b'{"input": "a"}\n\n  \n{"input": "b"}\r\nnot json\n')
    assert [(r.line, r.value, r.error) for r in records] == [
        (1, {"input": "a"}, None),
        (4, {"input": "b"}, None),
        (5, None, "invalid JSON: Expecting value at column 1"),
    ]


def test_invalid_utf8_rejects_only_its_line():
    records = jsonl(b'{"input": "ok"}\n{"input": "\xff"}\n{"input": "fine"}\n')
    assert [r.error for r in records] == [None, "invalid UTF-8 at byte 12", None]


def test_nan_is_not_json():
    (record,) = jsonl(b'{"input": "x", "metadata": {"score": NaN}}\n')
    assert record.error == "invalid JSON: NaN is not valid JSON"


def test_oversize_line_is_rejected_with_its_size_and_the_next_line_still_reads():
    big = b'{"input": "' + b"x" * 300 + b'"}\n'
    records = jsonl(big + b'{"input": "small"}\n', max_bytes=100)
    assert records[0].error == "record is 314 bytes, over the limit of 100 bytes"
    assert records[1].value == {"input": "small"}


def test_empty_file_is_a_clear_error():
    with pytest.raises(FormatError, match="the file is empty"):
        jsonl(b"")


def test_byte_order_mark_is_ignored():
    assert jsonl(b'\xef\xbb\xbf{"input": "a"}\n')[0].value == {"input": "a"}


# --- CSV reader ------------------------------------------------------------------------------------------------


def read(text: str | bytes, max_bytes: int = MAX) -> list:
    data = text.encode() if isinstance(text, str) else text
    return list(read_csv(io.BytesIO(data), max_bytes=max_bytes))


def test_csv_cells_map_to_fields_with_json_columns_parsed():
    records = read(
        "id,input,trial,metadata,context,labels\r\n"
        't1,"multi\nline",3,"{""k"": 1}",plain passage,"[{""criterion"": ""c"", ""verdict"": ""pass""}]"\r\n'
        "t2,second,,,,\r\n"
    )
    assert records[0].line == 2
    assert records[0].value == {
        "id": "t1",
        "input": "multi\nline",
        "trial": 3,
        "metadata": {"k": 1},
        "context": "plain passage",
        "labels": [{"criterion": "c", "verdict": "pass"}],
    }
    assert records[1].line == 4  # the first record spans lines 2 and 3
    assert records[1].value == {"id": "t2", "input": "second"}


def test_csv_bad_json_cell_names_the_column():
    (record,) = read('id,input,metadata\nt1,x,"{oops"\n')
    assert record.error.startswith("metadata: invalid JSON in cell:")


def test_csv_unknown_column_is_a_file_error():
    with pytest.raises(FormatError, match=r"unknown CSV column 'inptu' \(did you mean 'input'\?\)"):
        read("id,inptu\nt1,x\n")


def test_csv_invalid_utf8_rejects_only_its_row_naming_the_column():
    records = read(b"id,input\nt1,ok\nt2,\xff\nt3,fine\n")
    assert [r.error for r in records] == [None, "input: invalid UTF-8 at character 1", None]


def test_csv_wrong_cell_count_is_reported():
    (record,) = read("id,input\nt1,x,extra\n")
    assert record.error == "expected 2 cells, got 3"


# --- serialisation ---------------------------------------------------------------------------------------------


def test_serialize_then_parse_gives_back_the_same_record():
    record = parse_record(AGENT)
    out = serialize_trace(
        external_id=record.external_id,
        input=record.input,
        output=record.output,
        messages=record.messages,
        context=record.context,
        metadata=record.metadata,
        session_id=record.session_id,
        task_id=record.task_id,
        trial=record.trial,
        source=record.source,
        occurred_at=record.timestamp,
        labels=record.labels,
        notes=record.notes,
    )
    assert out["timestamp"] == "2026-11-01T12:00:00Z"
    assert parse_record(json.loads(dumps(out))) == record
    assert list(out) == list(AGENT)


def test_serialize_leaves_out_empty_fields_and_sorts_labels_by_criterion():
    out = serialize_trace(
        external_id="t",
        input="",
        output="a",
        messages=None,
        context=None,
        metadata={},
        session_id="",
        task_id="",
        trial=None,
        source="",
        occurred_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        labels=[LabelRecord("z", "pass", ""), LabelRecord("a", "fail", "why")],
    )
    assert dumps(out) == (
        '{"id":"t","output":"a","timestamp":"2026-01-02T03:04:05.000006Z","labels":'
        '[{"criterion":"a","verdict":"fail","critique":"why"},{"criterion":"z","verdict":"pass"}]}'
    )
    assert csv_row(out)[:4] == ["t", "", "a", ""]


def test_binarized_rows_convert_to_valid_records():
    row = {
        "id": "felm-wk-21",
        "source_dataset": "FELM",
        "task": "open QA factuality",
        "domain": "wk",
        "input": "How do I make perfect carbonara?",
        "output": float("nan"),
        "context": None,
        "label": "fail",
        "critique": "[knowledge_error] wrong",
        "meta": {"generator": "ChatGPT (2023)"},
    }
    record = parse_record(from_binarized(row, criterion="factual"))
    assert record.output == ""  # pandas wrote a missing answer as NaN
    assert record.source == "FELM"
    assert record.metadata == {
        "generator": "ChatGPT (2023)",
        "source_dataset": "FELM",
        "task": "open QA factuality",
        "domain": "wk",
    }
    assert record.labels == [LabelRecord("factual", "fail", "[knowledge_error] wrong")]
