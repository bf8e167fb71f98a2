"""Tool checks (`"target": "tool_calls"`): did the agent call the right tool, with the right arguments, never the
wrong one, not too often, and — only when asked — in order. On the demo's real agent trajectories, without a
database; JSON Schemas never fetch anything."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from demo.generate import DEFAULT_OUT
from judges.providers import ConfigError, TraceInput
from judges.providers.assertion import judge, validate_config
from judges.providers.tool_calls import read_tool_calls

# The demo agent's trials, by task: each a list of its trials' messages in trial order.
TASKS: dict[str, list[list[dict]]] = {}
for _line in DEFAULT_OUT.read_text(encoding="utf-8").splitlines():
    _record = json.loads(_line)
    if _record.get("task_id"):
        TASKS.setdefault(_record["task_id"], []).append((_record["trial"], _record["messages"]))
TASKS = {task: [messages for _, messages in sorted(trials)] for task, trials in TASKS.items()}


def verdicts(config: dict, task: str) -> list[str]:
    checked = validate_config(config)
    return [judge(checked, TraceInput(external_id="t", messages=m)).verdict for m in TASKS[task]]


def outcome(config: dict, messages: object):
    return judge(validate_config(config), TraceInput(external_id="t", output="Done.", messages=messages))


def call(name: str, arguments: object, call_id: str = "") -> dict:
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id or f"c-{name}", "type": "function", "function": {"name": name, "arguments": text}}


def conversation(*calls: dict) -> list[dict]:
    """A user turn, one assistant turn per call each answered by a tool result, and a final answer."""
    messages: list[dict] = [{"role": "user", "content": "Help."}]
    for c in calls:
        messages.append({"role": "assistant", "content": None, "tool_calls": [c]})
        messages.append({"role": "tool", "tool_call_id": c["id"], "content": "ok"})
    messages.append({"role": "assistant", "content": "Done."})
    return messages


DEBIT_CARD = {"type": "object", "required": ["card_id"], "properties": {"card_id": {"pattern": "d$"}}}


def test_the_demo_agents_calls_are_read_with_their_arguments_and_results():
    (first, *_) = TASKS["task-freeze-lost-debit"]
    calls = read_tool_calls(first)
    assert [(c.name, c.message, c.result is not None) for c in calls] == [
        ("get_cards", 2, True),
        ("freeze_card", 4, True),
    ]
    assert calls[1].arguments == {"card_id": "card_0819d", "reason": "misplaced"}
    assert json.loads(calls[1].result)["status"] == "frozen"
    assert read_tool_calls(None) is None and read_tool_calls([]) == []


def test_the_right_tool_with_the_right_arguments_passes_and_the_wrong_card_fails_naming_the_field():
    config = {"check": "tool_called", "target": "tool_calls", "tool": "freeze_card", "arguments_schema": DEBIT_CARD}
    # Trials 3 and 4 froze the credit card (card_…c) instead of the lost debit card.
    assert verdicts(config, "task-freeze-lost-debit") == ["pass", "pass", "fail", "fail"]
    failed = outcome(config, TASKS["task-freeze-lost-debit"][2])
    assert failed.reasoning == (
        "freeze_card was called 1 time, never with arguments matching the schema: messages[4] (call_2) breaks it at "
        "['card_id']: 'card_6726c' does not match 'd$'"
    )
    assert outcome(config, TASKS["task-freeze-lost-debit"][0]).reasoning == (
        "freeze_card was called with arguments matching the schema at messages[4] (call_2)"
    )
    # Any of the demo's argument mistakes is caught the same way: a transfer of 12,000 instead of 1,200 …
    capped = {"type": "object", "properties": {"amount": {"maximum": 5000}}}
    transfer = {"check": "tool_called", "tool": "schedule_transfer", "arguments_schema": capped}
    assert verdicts(transfer, "task-move-to-savings") == ["pass", "pass", "fail", "pass"]
    # … and a travel notice ending a year before it starts.
    this_year = {"type": "object", "properties": {"end_date": {"pattern": "^2026-"}}}
    notice = {"check": "tool_called", "tool": "add_travel_notice", "arguments_schema": this_year}
    assert verdicts(notice, "task-travel-notice") == ["pass", "fail", "pass", "pass"]


def test_a_tool_never_called_fails_tool_called_and_passes_tool_not_called():
    assert verdicts({"check": "tool_called", "tool": "handoff_to_agent"}, "task-freeze-lost-debit") == ["fail"] * 4
    reason = outcome({"check": "tool_called", "tool": "handoff_to_agent"}, TASKS["task-freeze-lost-debit"][0])
    assert reason.reasoning == "handoff_to_agent was never called (calls: get_cards, freeze_card)"
    never = {"check": "tool_not_called", "tool": "handoff_to_agent"}
    assert verdicts(never, "task-freeze-lost-debit") == ["pass"] * 4
    assert verdicts(never, "task-fraud-two-charges") == ["fail"] * 4
    assert outcome(never, TASKS["task-fraud-two-charges"][0]).reasoning == (
        "handoff_to_agent was called 1 time (forbidden): messages[6] (call_3)"
    )
    # With a schema, only matching calls are forbidden: never freeze a card as misplaced in a fraud case.
    misplaced = {
        "check": "tool_not_called",
        "tool": "freeze_card",
        "arguments_schema": {"properties": {"reason": {"const": "misplaced"}}},
    }
    assert verdicts(misplaced, "task-fraud-two-charges") == ["pass"] * 4
    assert verdicts(misplaced, "task-freeze-lost-debit") == ["fail"] * 4


def test_called_at_most_n_times_counts_calls_of_that_tool_only():
    searches = conversation(*(call("search", {"q": f"fee {i}"}, f"s{i}") for i in range(4)), call("answer", {}))
    at_most_3 = {"check": "tool_call_count", "tool": "search", "max_times": 3}
    assert (outcome(at_most_3, searches).verdict, outcome(at_most_3, searches).reasoning) == (
        "fail",
        "search was called 4 times, more than 3",
    )
    assert outcome({**at_most_3, "max_times": 4}, searches).reasoning == "search was called 4 times, within bounds"
    assert outcome({**at_most_3, "max_times": 0, "tool": "delete"}, searches).verdict == "pass"
    # Counting only the calls whose arguments match.
    fee_0 = {
        "check": "tool_call_count",
        "tool": "search",
        "min_times": 2,
        "arguments_schema": {"properties": {"q": {"const": "fee 0"}}},
    }
    assert (
        outcome(fee_0, searches).reasoning
        == "search was called with arguments matching the schema 1 time, fewer than 2"
    )


def test_order_counts_only_when_the_check_asks_for_it():
    fraud = TASKS["task-fraud-two-charges"][0]  # list_transactions, freeze_card, handoff_to_agent
    # Path-insensitive by default: each tool was called; what came before or between does not matter.
    for tool in ("handoff_to_agent", "list_transactions"):
        assert outcome({"check": "tool_called", "tool": tool}, fraud).verdict == "pass"
    in_order = {"check": "tool_called", "in_order": ["list_transactions", "handoff_to_agent"]}
    passed = outcome(in_order, fraud)
    assert passed.verdict == "pass"
    assert (
        passed.reasoning
        == "called in order: list_transactions at messages[2] (call_1), then handoff_to_agent at messages[6] (call_3)"
    )
    backwards = outcome({"check": "tool_called", "in_order": ["handoff_to_agent", "freeze_card"]}, fraud)
    assert backwards.verdict == "fail"
    assert backwards.reasoning.startswith(
        "step 2 of 2: no call of freeze_card after handoff_to_agent at messages[6] (call_3) (it was called, but not "
        "in this order)"
    )
    # A step may carry its own arguments schema.
    steps = [
        "list_transactions",
        {"tool": "freeze_card", "arguments_schema": {"properties": {"reason": {"const": "misplaced"}}}},
    ]
    assert outcome({"check": "tool_called", "in_order": steps}, fraud).reasoning.startswith(
        "step 2 of 2: no call of freeze_card with arguments matching the schema after list_transactions"
    )


def test_odd_messages_are_read_without_erroring():
    legacy = [
        {"role": "user", "content": "?"},
        {"role": "assistant", "content": None, "function_call": {"name": "lookup", "arguments": '{"id": 7}'}},
        {"role": "function", "name": "lookup", "content": "found"},
    ]
    (lookup,) = read_tool_calls(legacy)
    assert (lookup.name, lookup.arguments, lookup.result) == ("lookup", {"id": 7}, "found")
    # Arguments stored as an object, or not JSON at all; a call nobody answered.
    odd = [
        {
            "role": "assistant",
            "tool_calls": [call("a", "{oops", "x1"), {"id": "x2", "function": {"name": "b", "arguments": {"n": 1}}}],
        }
    ]
    first, second = read_tool_calls(odd)
    assert first.arguments_error.startswith("arguments are not valid JSON") and second.arguments == {"n": 1}
    schema = {"check": "tool_called", "tool": "a", "arguments_schema": {"type": "object"}}
    assert outcome(schema, odd).reasoning.startswith(
        "a was called 1 time, never with arguments matching the schema: messages[0] (x1): arguments are not valid JSON"
    )
    assert outcome({"check": "tool_called", "tool": "b"}, odd).reasoning == (
        "b was called at messages[0] (x2); no tool result answers it"
    )
    # No messages: no path to read, so no tool check passes on it (not even "never called").
    for config in (
        {"check": "tool_not_called", "tool": "a"},
        {"check": "tool_call_count", "tool": "a", "max_times": 1},
    ):
        result = outcome(config, None)
        assert (result.verdict, result.reasoning) == (
            "fail",
            "the trace has no messages, so there are no tool calls to check",
        )
    assert outcome({"check": "tool_not_called", "tool": "a"}, [{"role": "user", "content": "hi"}]).reasoning == (
        "a was never called (no tool was called)"
    )


REMOTE = "https://schemas.example.com/card.json"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            {"check": "tool_called"},
            "tool / in_order: give the tool's name (tool), or the tools in the order they must be called (in_order)",
        ),
        ({"check": "tool_called", "tool": "a", "in_order": ["a", "b"]}, "tool / in_order: give one of them"),
        ({"check": "tool_called", "tool": ""}, "tool: expected a tool's name, got ''"),
        ({"check": "tool_called", "tool": 3}, "tool: expected a tool's name, got 3"),
        (
            {"check": "tool_called", "in_order": ["a"]},
            "in_order: expected a list of at least 2 steps, each a tool's name or a",
        ),
        (
            {"check": "tool_called", "in_order": ["a", 3]},
            'in_order: step 2: expected a tool\'s name or a {"tool", "arguments_schema"} object, got 3',
        ),
        (
            {"check": "tool_called", "in_order": ["a", {"tool": "b", "colour": 1}]},
            "in_order: step 2: colour: not a setting of a step (settings: tool, arguments_schema)",
        ),
        (
            {"check": "tool_called", "in_order": [{"arguments_schema": {}}, "b"]},
            "in_order: step 1: tool: a tool's name is required",
        ),
        (
            {"check": "tool_called", "in_order": ["a", {"tool": "b", "arguments_schema": {"type": 5}}]},
            "in_order: step 2: arguments_schema: not a valid JSON Schema",
        ),
        (
            {"check": "tool_called", "in_order": ["a", "b"], "arguments_schema": {}},
            "arguments_schema: goes with tool; give each step of in_order its own",
        ),
        (
            {"check": "tool_called", "tool": "a", "arguments_schema": {"type": "nonsense"}},
            "arguments_schema: not a valid JSON Schema",
        ),
        (
            {"check": "tool_called", "tool": "a", "target": "output"},
            "target: expected tool_calls (a tool check reads the trace's tool calls), got 'output'",
        ),
        (
            {"check": "tool_not_called", "tool": "a", "path": "$.x"},
            "path: not a setting of a tool_not_called check (settings: check, target, tool, arguments_schema)",
        ),
        ({"check": "tool_not_called"}, "tool: a tool's name is required"),
        ({"check": "tool_call_count", "tool": "a"}, "min_times / max_times: give at least one bound"),
        (
            {"check": "tool_call_count", "tool": "a", "min_times": 3, "max_times": 1},
            "min_times: 3 is above max_times 1",
        ),
        (
            {"check": "tool_call_count", "tool": "a", "max_times": -1},
            "max_times: expected a non-negative whole number, got -1",
        ),
        (
            {"check": "tool_call_count", "tool": "a", "max_times": "3"},
            "max_times: expected a non-negative whole number, got '3'",
        ),
        (
            {"check": "regex", "pattern": "x", "target": "tool_calls"},
            "target: tool_calls is read by the tool checks (tool_called, tool_not_called, tool_call_count), "
            "not by a regex check, which reads output or input",
        ),
        # JSON Schemas: only refs inside the schema, for tool arguments and the json_schema check alike.
        (
            {"check": "tool_called", "tool": "a", "arguments_schema": {"properties": {"card": {"$ref": REMOTE}}}},
            f"arguments_schema: $ref '{REMOTE}' at properties.card is not inside the schema: only local refs "
            "(like '#/$defs/name') are allowed, and nothing is fetched",
        ),
        (
            {"check": "json_schema", "schema": {"$ref": REMOTE}},
            f"schema: $ref '{REMOTE}' at the top level is not inside the schema",
        ),
        (
            {"check": "json_schema", "schema": {"allOf": [{"$dynamicRef": "other.json#meta"}]}},
            "schema: $dynamicRef 'other.json#meta' at allOf[0] is not inside the schema",
        ),
        (
            {"check": "tool_called", "tool": "a", "arguments_schema": {"$ref": "#/$defs/card"}},
            "arguments_schema: $ref '#/$defs/card' at the top level points to nothing in the schema",
        ),
    ],
)
def test_bad_tool_check_configs_name_the_field(config, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate_config(config)


@pytest.mark.parametrize(
    ("config", "cleaned"),
    [
        ({"check": "tool_called", "tool": "a"}, {"check": "tool_called", "target": "tool_calls", "tool": "a"}),
        (
            {
                "check": "tool_called",
                "target": "tool_calls",
                "in_order": ["a", {"tool": "b", "arguments_schema": True}],
            },
            {
                "check": "tool_called",
                "target": "tool_calls",
                "in_order": ["a", {"tool": "b", "arguments_schema": True}],
            },
        ),
        (
            {"check": "tool_call_count", "tool": "a", "max_times": 0},
            {"check": "tool_call_count", "target": "tool_calls", "tool": "a", "max_times": 0},
        ),
        # A local ref and a "$ref" key inside a const (data, not a reference) are fine.
        (
            {
                "check": "tool_not_called",
                "tool": "a",
                "arguments_schema": {
                    "$defs": {"id": {"type": "string"}},
                    "properties": {"id": {"$ref": "#/$defs/id"}, "x": {"const": {"$ref": "https://x"}}},
                },
            },
            {
                "check": "tool_not_called",
                "target": "tool_calls",
                "tool": "a",
                "arguments_schema": {
                    "$defs": {"id": {"type": "string"}},
                    "properties": {"id": {"$ref": "#/$defs/id"}, "x": {"const": {"$ref": "https://x"}}},
                },
            },
        ),
    ],
)
def test_a_valid_tool_check_comes_back_with_its_target_filled_in(config, cleaned):
    assert validate_config(config) == cleaned
    assert validate_config(cleaned) == cleaned


class _Counter(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (the http.server API)
        type(self).hits.append(self.path)
        body = b'{"type": "string"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/schema+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def schema_host():
    """A loopback HTTP server that serves a schema to anyone who asks, and counts who did."""
    _Counter.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Counter.hits
    server.shutdown()
    server.server_close()


def test_a_stored_config_with_a_remote_ref_errors_each_judgment_and_fetches_nothing(schema_host):
    url, hits = schema_host
    remote = {"type": "object", "properties": {"card_id": {"$ref": f"{url}/card.json"}}}
    # As a config stored before remote refs were refused would hold them (validation refuses them now).
    with pytest.raises(ConfigError, match="is not inside the schema"):
        validate_config({"check": "json_schema", "schema": remote})
    stored = [
        {"check": "json_schema", "target": "output", "schema": remote},
        {"check": "tool_called", "target": "tool_calls", "tool": "freeze_card", "arguments_schema": remote},
    ]
    messages = TASKS["task-freeze-lost-debit"][0]
    for config in stored:
        result = judge(config, TraceInput(external_id="t", output='{"card_id": 5}', messages=messages))
        assert result.verdict == "" and "which is not inside it; nothing is fetched" in result.error
        assert result.error.startswith(("schema: ", "arguments_schema: ")) and f"{url}/card.json" in result.error
    assert hits == []
