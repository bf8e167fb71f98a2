"""An assertion judge on the trace's tool calls ("did it call the correct API?"), created, run and measured against
the expert like any other judge."""

from __future__ import annotations

import pytest

from annotation.services import DomainError
from judges.models import Judgment
from judges.services import judge_create, judge_run_create, judge_run_execute
from tests.factories import make_agent_trace, make_criterion, make_label

pytestmark = pytest.mark.django_db
# The order id must be the number the customer gave, not a string, and nobody gets a refund for asking where it is.
RIGHT_LOOKUP = {
    "check": "tool_called",
    "target": "tool_calls",
    "tool": "lookup_order",
    "arguments_schema": {"type": "object", "required": ["order_id"], "properties": {"order_id": {"type": "integer"}}},
}


def lookup(arguments: str) -> list[dict]:
    """The agent looks the order up with these arguments (JSON text, as the model wrote them) and answers."""
    return [
        {"role": "user", "content": "Where is my order 42?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "lookup_order", "arguments": arguments}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'},
        {"role": "assistant", "content": "Your order has shipped."},
    ]


def test_a_tool_call_judge_agrees_with_the_expert_on_which_agent_called_the_api_right(project):
    criterion = make_criterion(
        project=project, name="correct_api_call", definition="Fail unless lookup_order got the id."
    )
    expected = {}
    for i in range(60):
        kind = i % 3  # right call, the id as a string, no lookup at all (the agent guessed)
        messages = lookup('{"order_id": 42}') if kind < 2 else [lookup("{}")[0], lookup("{}")[3]]
        if kind == 1:
            messages = lookup('{"order_id": "42"}')
        trace = make_agent_trace(project=project, external_id=f"a-{i}", messages=messages)
        expected[trace.pk] = "pass" if kind == 0 else "fail"
        make_label(trace=trace, criterion=criterion, verdict=expected[trace.pk])
    judge = judge_create(
        project=project, criterion=criterion, name="lookup-by-id", kind="assertion", config=RIGHT_LOOKUP
    )
    assert judge.latest_version().config == RIGHT_LOOKUP  # the snapshot is the config, target filled in
    for split in ("dev", "test"):
        run = judge_run_execute(run=judge_run_create(version=judge.latest_version(), split=split))
        assert run.report["fp"] == run.report["fn"] == run.report["errors"] == 0 and run.report["n"] > 0
        verdicts = dict(Judgment.objects.filter(run=run).values_list("trace_id", "verdict"))
        assert verdicts == {pk: expected[pk] for pk in verdicts}
    of_kind = {kind: [f"a-{i}" for i in range(kind, 60, 3)] for kind in range(3)}
    stringly = Judgment.objects.filter(trace__external_id__in=of_kind[1]).first()
    assert stringly.reasoning == (
        "lookup_order was called 1 time, never with arguments matching the schema: messages[1] (c1) breaks it at "
        "['order_id']: '42' is not of type 'integer'"
    )
    guessed = Judgment.objects.filter(trace__external_id__in=of_kind[2]).first()
    assert guessed.reasoning == "lookup_order was never called (no tool was called)"


def test_a_tool_check_with_a_remote_schema_is_refused_when_the_judge_is_created(project):
    criterion = make_criterion(project=project, name="correct_api_call")
    remote = {**RIGHT_LOOKUP, "arguments_schema": {"$ref": "https://example.com/order.json"}}
    with pytest.raises(DomainError, match=r"^config: arguments_schema: \$ref 'https://example.com/order.json' at the"):
        judge_create(project=project, criterion=criterion, name="remote", kind="assertion", config=remote)
