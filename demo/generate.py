"""Writes the demo traces: "Harbor Assist", the support assistant of the fictional Harbor Bank.

Run `python -m demo.generate [--out PATH]`; without `--out` it rewrites `demo_traces.jsonl` next to this
file, which is committed so `make run` needs no generation step. Everything comes from one seeded `random.Random`,
so the same seed gives the same bytes (a test checks it) and a diff of the JSONL shows real changes only.

The bank, its fees and its customers are invented (`bank.py`). Each scenario template (`single.py`, `chat.py`,
`rag.py`, `agent.py`, `special.py`) knows the bank's published facts and which failure it injected, so the expert's
labels and critiques are specific and true to the trace they are attached to. No Django import: this is plain data
generation; `load_demo` imports the file it writes.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from demo.agent import AGENT_TEMPLATES, TASKS
from demo.bank import CHANNELS, MODELS, PROMPTS
from demo.chat import CHAT_TEMPLATES
from demo.core import GROUNDED, RESOLVES, Ctx, Draft
from demo.rag import RAG_TEMPLATES
from demo.single import SINGLE_TEMPLATES
from demo.special import long_agent_reconcile, long_chat_mobile_deposits, xss_phishing_paste, xss_single

SEED = 20261101
DEFAULT_OUT = Path(__file__).with_name("demo_traces.jsonl")
# The review window: production traces from four weeks before the expert sat down to review them.
START = datetime(2026, 10, 26, 7, 0, tzinfo=UTC)
WINDOW_DAYS = 28

PROJECT_NAME = "Harbor Assist (Harbor Bank support)"
PROJECT_DESCRIPTION = (
    "Demo project: traces of Harbor Assist, the support assistant of the fictional Harbor Bank. Single-turn answers, "
    "chats, RAG answers and agent trajectories, about 60 of them reviewed by the expert."
)
# The two criteria the expert labels in the demo, with the definitions a judge would be given.
CRITERIA: list[tuple[str, str]] = [
    (
        GROUNDED,
        "Pass when every factual claim about Harbor Bank (fees, limits, timelines, policies, account data, actions "
        "taken) is supported by the retrieved context, a tool result or the published fee schedule. Fail on any "
        "claim that is contradicted or unsupported, including confirming an action the tools did not perform.",
    ),
    (
        RESOLVES,
        "Pass when the customer's request is resolved, or handed off to a human when policy requires it (fraud, "
        "bereavement, complaints, an explicit request for a person), with the right tool arguments, in a tone and "
        "format that suit the customer and the channel (plain text on SMS and voice), and without revealing "
        "internal notes. Fail otherwise.",
    ),
]


# How many traces of each kind (besides the agent task trials and the special traces).
PLAN = [
    ("single", SINGLE_TEMPLATES, 40),
    ("chat", CHAT_TEMPLATES, 36),
    ("rag", RAG_TEMPLATES, 50),
    ("agent", AGENT_TEMPLATES, 34),
]
FAIL_RATE = 0.42
TRIALS_PER_TASK = 4
# Labelled traces per kind, plus the forced special ones; about 60 in all, as a first review session would do.
LABELS_PER_KIND = {"single": 14, "chat": 12, "rag": 16, "agent": 15}


def _metadata(rng: random.Random, draft: Draft, channel: str, *, synthetic: bool) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "model": rng.choice(MODELS),
        "locale": draft.locale or ("en-US" if rng.random() < 0.93 else "en-GB"),
        "channel": draft.channel or channel,
        "prompt_version": rng.choice(PROMPTS),
        "latency_ms": rng.randrange(420, 4800) if draft.kind != "agent" else rng.randrange(1800, 14000),
    }
    if synthetic:
        metadata["generator"] = "persona-sim-v2"
    return metadata


def _timestamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _record(draft: Draft) -> dict[str, Any]:
    record: dict[str, Any] = {}
    if draft.input:
        record["input"] = draft.input
    if draft.output:
        record["output"] = draft.output
    if draft.messages:
        record["messages"] = draft.messages
    if draft.context:
        record["context"] = draft.context
    return record


def build_traces(seed: int = SEED) -> list[dict[str, Any]]:
    """All demo traces, in a stable order; labels and notes attached to about 60 of them."""
    rng = random.Random(seed)
    items: list[tuple[dict[str, Any], Draft]] = []

    def add(draft: Draft, moment: datetime, *, extra: dict[str, Any], synthetic: bool = False) -> None:
        channel = rng.choice(CHANNELS) if draft.kind != "agent" else rng.choice(["web", "app"])
        record = {"id": "", **_record(draft)}
        record["metadata"] = _metadata(rng, draft, channel, synthetic=synthetic)
        if draft.kind in {"chat", "agent"}:
            record["session_id"] = f"sess-{rng.randrange(16**8):08x}"
        record.update(extra)
        record["source"] = "synthetic" if synthetic else "production"
        record["timestamp"] = _timestamp(moment)
        items.append((record, draft))

    def moment() -> datetime:
        return START + timedelta(seconds=rng.randrange(WINDOW_DAYS * 86400))

    for kind, templates, count in PLAN:
        order = list(templates)
        rng.shuffle(order)
        for index in range(count):
            template, fails = order[index % len(order)]
            fail = rng.choice(fails) if rng.random() < FAIL_RATE else None
            when = moment()
            draft = template(Ctx(rng=rng, now=when, fail=fail))
            assert draft.kind == kind, template.__name__
            add(draft, when, extra={}, synthetic=rng.random() < 0.15)

    # Nightly regression suite: the same task several times; only the agent's behaviour varies between trials.
    for night, (task_id, template, fail_rate) in enumerate(TASKS):
        run_at = START + timedelta(days=14 + night, hours=2)
        fails = dict(AGENT_TEMPLATES)[template]
        for trial in range(1, TRIALS_PER_TASK + 1):
            trial_rng = random.Random(f"{seed}:{task_id}:{trial}")
            fail = trial_rng.choice(fails) if trial_rng.random() < fail_rate else None
            ctx = Ctx(rng=random.Random(f"{seed}:{task_id}"), now=run_at, fail=fail, vary=trial_rng)
            add(
                template(ctx),
                run_at + timedelta(minutes=3 * trial),
                extra={"task_id": task_id, "trial": trial},
                synthetic=True,
            )

    specials = [long_chat_mobile_deposits, long_agent_reconcile, xss_phishing_paste, xss_single]
    for template in specials:
        when = moment()
        add(template(Ctx(rng=rng, now=when, fail=None)), when, extra={})

    # Ids follow time order, as a production export would.
    items.sort(key=lambda item: item[0]["timestamp"])
    for number, (record, _) in enumerate(items, start=1):
        record["id"] = f"hb-{number:04d}"

    _attach_reviews(rng, items)
    return [record for record, _ in items]


def _attach_reviews(rng: random.Random, items: list[tuple[dict[str, Any], Draft]]) -> None:
    """The expert's first session: labels with critiques on both criteria and a note, on ~60 traces."""
    chosen: list[int] = []
    special = [
        i
        for i, (record, draft) in enumerate(items)
        if len(record.get("messages") or []) > 100 or "<script>" in json.dumps(record)
    ]
    chosen.extend(special)
    for kind, count in LABELS_PER_KIND.items():
        candidates = [i for i, (_, draft) in enumerate(items) if draft.kind == kind and i not in chosen]
        chosen.extend(rng.sample(candidates, count))
    coded: set[str] = set()
    for index in sorted(chosen):
        record, draft = items[index]
        labels = []
        for criterion, (verdict, critique) in ((GROUNDED, draft.grounded), (RESOLVES, draft.resolves)):
            labels.append({"criterion": criterion, "verdict": verdict, "critique": critique})
        record["labels"] = labels
        # Most notes stay free text (open coding); some are already coded, at least one per failure mode seen.
        new_mode = any(mode not in coded for mode in draft.modes)
        if draft.modes and (new_mode or rng.random() < 0.3):
            record["notes"] = [{"text": draft.note, "failure_modes": draft.modes}]
            coded.update(draft.modes)
        else:
            record["notes"] = [draft.note]


def write_jsonl(traces: list[dict[str, Any]], path: Path) -> None:
    # One compact object per line, UTF-8 kept readable; "\n" line endings on every platform so the bytes are stable.
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for trace in traces:
            handle.write(json.dumps(trace, ensure_ascii=False) + "\n")


def generate(path: Path = DEFAULT_OUT, *, seed: int = SEED) -> int:
    """Writes the demo JSONL to `path` and returns the number of traces."""
    traces = build_traces(seed)
    write_jsonl(traces, path)
    return len(traces)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where to write the JSONL")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    count = generate(args.out, seed=args.seed)
    print(f"wrote {count} traces to {args.out}")


if __name__ == "__main__":
    main()
