"""Users' feedback in the trace format and from other sources (annotation.feedback): no database."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from annotation.feedback import (
    FeedbackError,
    feedback_from_attributes,
    feedback_from_langfuse_scores,
    parse_feedback,
)
from annotation.trace_format import RecordError, parse_record, read_csv, serialize_trace


def test_thumbs_rating_and_comment_are_normalised_with_a_negative_flag():
    items = parse_feedback(
        [
            {"kind": "thumbs", "value": "up"},
            {"kind": "thumbs", "value": -1},
            {"kind": "thumbs", "value": 0},
            {"kind": "thumbs", "value": True},
            {"kind": "rating", "value": 2, "scale": 5},
            {"kind": "rating", "value": 3},
            {"kind": "rating", "value": 4, "scale": 10},
            {"kind": "comment", "value": "Wrong city", "at": "2026-12-01T10:00:00Z", "user": "u-1", "source": "app"},
        ]
    )
    assert [(i.kind, i.value, i.negative) for i in items] == [
        ("thumbs", "up", False),
        ("thumbs", "down", True),
        ("thumbs", "down", True),
        ("thumbs", "up", False),
        ("rating", 2.0, True),
        ("rating", 3.0, False),
        ("rating", 4.0, True),
        ("comment", "Wrong city", None),
    ]
    assert items[5].scale == 5.0
    assert items[7].at == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert (items[7].user, items[7].source) == ("u-1", "app")


@pytest.mark.parametrize(
    ("feedback", "message"),
    [
        ({"kind": "thumbs"}, "feedback: expected a list, got an object"),
        ([{"kind": "thumbs", "value": "up"}, {"kind": "stars", "value": 1}], 'feedback[1].kind: expected "thumbs"'),
        ([{"kind": "thumbs", "value": "sideways"}], 'feedback[0].value: expected "up" or "down"'),
        ([{"kind": "thumbs", "value": 2}], 'feedback[0].value: expected "up" or "down"'),
        ([{"kind": "rating", "value": 6}], "feedback[0].value: 6 is outside the scale 0–5"),
        ([{"kind": "rating", "value": "x"}], 'feedback[0].value: expected a number, got "x"'),
        ([{"kind": "rating", "value": 1, "scale": 0}], "feedback[0].scale: expected a number above 0"),
        ([{"kind": "comment", "value": " "}], "feedback[0].value: a comment needs text"),
        ([{"kind": "comment", "value": "a\x00b"}], "feedback[0].value: contains a NUL character"),
        ([{"kind": "thumbs", "value": "up", "scale": 5}], "feedback[0].scale: only a rating has a scale"),
        (
            [{"kind": "thumbs", "value": "up", "at": "yesterday"}],
            'feedback[0].at: not an ISO 8601 date-time: "yesterday"',
        ),
        ([{"kind": "thumbs", "value": "up", "colour": 1}], "feedback[0]: unknown key 'colour'"),
        ([{"kind": "thumbs"}], "feedback[0].value: required"),
        (
            [{"kind": "thumbs", "value": "up", "id": "f1"}, {"kind": "thumbs", "value": "up", "id": "f1"}],
            "feedback[1].id: 'f1' is also the id of feedback[0]",
        ),
    ],
)
def test_a_bad_item_is_rejected_naming_its_index_and_field(feedback, message):
    with pytest.raises(FeedbackError) as caught:
        parse_feedback(feedback)
    assert str(caught.value).startswith(message)
    # The same message reaches the trace format's reader, so a file's line is rejected with it.
    with pytest.raises(RecordError, match="^feedback"):
        parse_record({"id": "t", "input": "q", "feedback": feedback})


def test_the_trace_format_carries_feedback_through_serialisation_unchanged():
    record = parse_record(
        {
            "id": "t",
            "input": "q",
            "feedback": [
                {"kind": "rating", "value": 4, "scale": 5, "at": "2026-12-01T10:00:00+00:00", "id": "r1"},
                {"kind": "comment", "value": "<b>meh</b>", "user": "u"},
            ],
        }
    )
    out = serialize_trace(
        external_id=record.external_id,
        input=record.input,
        output="",
        messages=None,
        context=None,
        metadata={},
        session_id="",
        task_id="",
        trial=None,
        source="",
        occurred_at=datetime(2026, 12, 1, tzinfo=UTC),
        feedback=record.feedback,
    )
    assert out["feedback"] == [
        {"kind": "rating", "value": 4, "scale": 5, "at": "2026-12-01T10:00:00Z", "id": "r1"},
        {"kind": "comment", "value": "<b>meh</b>", "user": "u"},
    ]
    assert parse_record(out).feedback == record.feedback


def test_a_csv_feedback_cell_holds_json():
    body = b'id,input,feedback\nt1,q,"[{""kind"": ""thumbs"", ""value"": ""down""}]"\n'
    (raw,) = read_csv(io.BytesIO(body), max_bytes=10_000)
    assert [(f.kind, f.negative) for f in parse_record(raw.value).feedback] == [("thumbs", True)]


def test_feedback_attributes_of_a_span_become_items_that_validate():
    attributes = {
        "feedback.thumbs": "down",
        "feedback.rating": 1,
        "feedback.rating.scale": 10,
        "feedback.comment": "It ignored my question",
        "feedback.user": "u-7",
        "feedback.at": "2026-12-02T08:00:00Z",
        "feedback.id": "evt-1",
        "input.value": "not feedback",
    }
    items = feedback_from_attributes(attributes)
    assert items == [
        {"kind": "thumbs", "value": "down", "at": "2026-12-02T08:00:00Z", "user": "u-7", "id": "evt-1:thumbs"},
        {
            "kind": "rating",
            "value": 1,
            "at": "2026-12-02T08:00:00Z",
            "user": "u-7",
            "scale": 10,
            "id": "evt-1:rating",
        },
        {
            "kind": "comment",
            "value": "It ignored my question",
            "at": "2026-12-02T08:00:00Z",
            "user": "u-7",
            "id": "evt-1:comment",
        },
    ]
    assert [r.negative for r in parse_feedback(items)] == [True, True, None]
    assert feedback_from_attributes({"llm.model_name": "x"}) == []


def test_langfuse_scores_of_every_data_type_become_items_that_validate():
    scores = [
        {
            "id": "s1",
            "name": "user-feedback",
            "value": 0,
            "dataType": "NUMERIC",
            "comment": "wrong answer",
            "timestamp": "2026-12-02T08:00:00.000Z",
        },
        {"id": "s2", "name": "helpfulness", "value": 4, "dataType": "NUMERIC"},
        {"id": "s3", "name": "correct", "value": 1, "dataType": "BOOLEAN"},
        {"id": "s4", "name": "sentiment", "value": 0, "stringValue": "negative", "dataType": "CATEGORICAL"},
        {"id": "s5", "name": "topic", "value": 0, "stringValue": "billing", "dataType": "CATEGORICAL"},
        {"id": "s6", "name": "quality", "value": 0.2, "dataType": "NUMERIC"},
    ]
    items = feedback_from_langfuse_scores(scores)
    parsed = parse_feedback(items)
    assert [(r.kind, r.value, r.negative, r.client_id) for r in parsed] == [
        ("thumbs", "down", True, "langfuse:s1"),
        ("comment", "wrong answer", None, "langfuse:s1:comment"),
        ("rating", 4.0, False, "langfuse:s2"),
        ("thumbs", "up", False, "langfuse:s3"),
        ("thumbs", "down", True, "langfuse:s4"),
        ("rating", 0.2, True, "langfuse:s6"),
    ]
    assert parsed[5].scale == 1.0
    assert {r.source for r in parsed} == {"langfuse"}
    assert parsed[0].at == datetime(2026, 12, 2, 8, tzinfo=UTC)
