"""The demo generator and the files it commits: deterministic, in the documented formats, and honest about what it
injected (the expert's labels follow what the generator did, not what a check would find)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from annotation.models import Trace
from demo import releases, traffic
from demo.formatting import add_markup, hyphen_lines, sentences
from demo.generate import CRITERIA, DATA_DIR, DEFAULT_OUT, PRODUCTION_FILE, build, candidates_file, generate

CRITERION_NAMES = {name for name, _ in CRITERIA}
FIRST_SESSION = 184


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _kind(record: dict[str, Any]) -> str:
    # The app's own definition of a trace's kind, on an unsaved row.
    return Trace(messages=record.get("messages"), context=record.get("context")).kind


def _moment(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def records() -> list[dict[str, Any]]:
    return _lines(DEFAULT_OUT)


@pytest.fixture(scope="module")
def production() -> list[dict[str, Any]]:
    return _lines(DATA_DIR / PRODUCTION_FILE)


@pytest.fixture(scope="module")
def candidates() -> dict[str, list[dict[str, Any]]]:
    return {release: _lines(DATA_DIR / candidates_file(release)) for release in releases.RELEASES}


def test_generator_writes_the_same_bytes_twice(tmp_path: Path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    counts = generate(first)
    generate(second)
    assert counts[DEFAULT_OUT.name] >= 150
    assert len(counts) == 4
    for name in counts:
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_committed_demo_files_are_what_the_generator_writes(tmp_path: Path):
    counts = generate(tmp_path)
    for name in counts:
        assert (tmp_path / name).read_bytes() == (DATA_DIR / name).read_bytes(), (
            f"{name}: run `python -m demo.generate` and commit"
        )


def test_demo_files_stay_small_enough_to_commit():
    assert DEFAULT_OUT.stat().st_size < 600_000
    assert (DATA_DIR / PRODUCTION_FILE).stat().st_size < 600_000


def test_every_line_is_a_trace_in_the_documented_format(records, production):
    ids = [record["id"] for record in records + production]
    assert len(set(ids)) == len(ids)
    for record in records + production:
        assert record.keys() & {"input", "output", "messages"}, record["id"]
        assert record["source"] in {"production", "synthetic"}
        _moment(record)
        assert {"model", "locale", "channel"} <= record["metadata"].keys()
        for message in record.get("messages") or []:
            assert message["role"] in {"system", "user", "assistant", "tool"}


def test_all_four_kinds_are_present(records):
    kinds = Counter(_kind(record) for record in records)
    assert set(kinds) == {"single-turn", "chat", "rag", "agent"}
    assert min(kinds.values()) >= 30


def test_tool_calls_use_the_openai_format_and_every_result_answers_a_call(records):
    agents = [record for record in records if _kind(record) == "agent"]
    for record in agents:
        open_calls: set[str] = set()
        for message in record["messages"]:
            if message.get("tool_calls"):
                assert message["role"] == "assistant" and message["content"] is None
                for call in message["tool_calls"]:
                    assert call["type"] == "function"
                    assert isinstance(json.loads(call["function"]["arguments"]), dict)
                    open_calls.add(call["id"])
            if message["role"] == "tool":
                assert message["tool_call_id"] in open_calls, record["id"]
        final = record["messages"][-1]
        assert final["role"] == "assistant" and final["content"], record["id"]


def test_agent_tasks_have_several_trials(records):
    trials: dict[str, list[int]] = {}
    for record in records:
        if record.get("task_id"):
            trials.setdefault(record["task_id"], []).append(record["trial"])
    assert len(trials) >= 3
    for numbers in trials.values():
        assert sorted(numbers) == list(range(1, len(numbers) + 1))
        assert len(numbers) >= 3


def test_the_first_session_labels_about_sixty_traces_on_the_three_criteria(records):
    labelled = [record for record in records[:FIRST_SESSION] if record.get("labels")]
    assert 50 <= len(labelled) <= 70
    assert all({label["criterion"] for label in r["labels"]} == CRITERION_NAMES for r in labelled)
    verdicts = Counter((label["criterion"], label["verdict"]) for r in labelled for label in r["labels"])
    for name in CRITERION_NAMES:
        assert verdicts[(name, "pass")] > 0 and verdicts[(name, "fail")] > 0
    assert all(label["critique"].strip() for r in labelled for label in r["labels"])
    assert all(record.get("notes") for record in labelled)


def test_the_second_session_labels_sms_and_voice_replies_on_plain_text_only(records):
    second = records[FIRST_SESSION:]
    assert len(second) >= 50
    assert all(record["metadata"]["channel"] in {"sms", "voice"} and record.get("notes") for record in second)
    assert all([label["criterion"] for label in record["labels"]] == ["plain_text"] for record in second)
    verdicts = Counter(record["labels"][0]["verdict"] for record in second)
    # Enough fails that dev and test (40% each, by a hash) both hold several, whatever the installation's hash.
    assert verdicts["fail"] >= 20 and verdicts["pass"] >= 30


def test_plain_text_fails_only_where_markup_was_sent_over_sms_or_voice(records):
    for record in records:
        for label in record.get("labels", []):
            if label["criterion"] == "plain_text" and label["verdict"] == "fail":
                assert record["metadata"]["channel"] in {"sms", "voice"}, record["id"]
                assert "SMS" in label["critique"] or "voice" in label["critique"], record["id"]


def test_some_notes_are_coded_to_failure_modes_but_most_are_plain(records):
    notes = [note for record in records for note in record.get("notes", [])]
    coded = [note for note in notes if isinstance(note, dict)]
    assert 5 <= len(coded) < len(notes) / 2
    assert len({mode for note in coded for mode in note["failure_modes"]}) >= 4


def test_demo_includes_a_long_chat_and_pasted_html(records):
    assert sum(len(record.get("messages") or []) >= 100 for record in records) >= 2
    assert any("<script>" in json.dumps(record) for record in records)


def test_golden_members_have_a_reason_and_the_releases_answer_each_exactly_once(records, candidates):
    golden = {record["id"]: record["golden"] for record in records if "golden" in record}
    assert Counter(g["reason"] for g in golden.values()).keys() == {"core_feature", "past_regression", "edge_case"}
    assert all(g["comment"] for g in golden.values())
    for release, lines in candidates.items():
        assert sorted(line["id"] for line in lines) == sorted(golden), release
        assert all(line["output"] and line["metadata"]["release"] == release for line in lines)


def test_release_1_5_0_changes_only_sms_and_voice_answers(records, candidates):
    by_id = {record["id"]: record for record in records}
    before = {line["id"]: line["output"] for line in candidates["1.4.0"]}
    changed = [line["id"] for line in candidates["1.5.0"] if line["output"] != before[line["id"]]]
    assert len(changed) >= 10
    assert all(by_id[trace_id]["metadata"]["channel"] in {"sms", "voice"} for trace_id in changed)


def test_production_traffic_is_unlabelled_and_spans_the_nominal_days(production):
    assert all(record["source"] == "production" and "labels" not in record for record in production)
    days = Counter(_moment(record).date() for record in production)
    assert sorted(days) == [(traffic.START + timedelta(days=d)).date() for d in range(traffic.DAYS)]
    assert days[(traffic.END - timedelta(days=1)).date()] == traffic.INCIDENT_PER_DAY


def test_on_the_incident_day_the_fine_tune_answers_sms_and_voice():
    data = build()
    last_day = (traffic.END - timedelta(days=1)).date()
    models = Counter(
        (r["metadata"]["channel"] in {"sms", "voice"}, r["metadata"]["model"])
        for r in data.production
        if _moment(r).date() == last_day
    )
    assert {model for (plain_channel, model) in models if plain_channel} == {traffic.INCIDENT_MODEL}
    assert traffic.INCIDENT_MODEL not in {model for (plain_channel, model) in models if not plain_channel}


def test_traffic_moves_so_that_its_last_day_ends_at_the_given_midnight():
    midnight = datetime.fromisoformat("2027-03-15T00:00:00+00:00")
    assert traffic.END + traffic.shift_days(midnight) == midnight


@pytest.mark.parametrize(
    "text",
    [
        "An outgoing domestic wire costs $25. You can send one in the app under Transfers > Wire, or at any branch.",
        "No fee at all.",
        "Requests made before 4:00 p.m. ET go out the same day. Later ones go out the next business day.",
    ],
)
def test_markup_always_writes_a_markdown_symbol_and_hyphen_lines_never_do(text):
    import random

    rng = random.Random(7)
    for _ in range(40):
        marked, markup = add_markup(text, rng)
        assert marked != text and markup
        assert any(symbol in marked for symbol in ("**", "## ", "|", "`")), marked
    lines = hyphen_lines(text)
    if len(sentences(text)) > 1:
        assert lines and not any(symbol in lines for symbol in ("**", "#", "|", "`"))
    else:
        assert lines is None


def test_sentences_do_not_end_at_abbreviations():
    assert sentences("Send it before 4:00 p.m. ET today. It arrives in the U.S. tomorrow.") == [
        "Send it before 4:00 p.m. ET today.",
        "It arrives in the U.S. tomorrow.",
    ]


def traffic_count() -> int:
    return len(_lines(DATA_DIR / PRODUCTION_FILE))


def test_the_evidence_session_gives_the_held_out_test_split_enough_labels_whatever_the_criterion_id(records):
    # The demo's v2 must meet the bar on test with the 95% lower bounds (judges.promotions.RULE), and the split
    # hash is seeded with the criterion's id, which differs between installations: check many ids.
    import re

    from demo import sms_review
    from demo.services import PLAIN_V2
    from judges.evidence import bar_check
    from judges.splits import split_of

    pattern = re.compile(PLAIN_V2["pattern"])
    cells = {("pass", "pass"): "tp", ("pass", "fail"): "fn", ("fail", "pass"): "fp", ("fail", "fail"): "tn"}
    labelled = [
        (record["id"], label["verdict"], "fail" if pattern.search(record.get("output") or "") else "pass")
        for record in records
        for label in record.get("labels", [])
        if label["criterion"] == "plain_text"
    ]
    # The third session closes the file, numbered after the production traffic.
    evidence = records[-sms_review.EVIDENCE_REPLIES :]
    assert all([label["criterion"] for label in record["labels"]] == ["plain_text"] for record in evidence)
    assert evidence[0]["id"] == f"hb-{len(records) - len(evidence) + traffic_count() + 1:04d}"
    for criterion_id in range(1, 101):
        counts = {split: dict.fromkeys(cells.values(), 0) for split in ("train", "dev", "test")}
        for external_id, expert, judge in labelled:
            counts[split_of(f"evalstudio:{criterion_id}", external_id)][cells[(expert, judge)]] += 1
        assert bar_check(counts["dev"], min_tpr=0.9, min_tnr=0.9).reaches, criterion_id
        assert bar_check(counts["test"], min_tpr=0.9, min_tnr=0.9).meets, (criterion_id, counts["test"])
