"""Writes the demo data: "Harbor Assist", the support assistant of the fictional Harbor Bank.

Run `python -m demo.generate [--out-dir DIR]`; without `--out-dir` it rewrites the files next to this module, which
are committed so `make run` needs no generation step:

- `demo_traces.jsonl`: the reviewed traces. The first session (about 60 traces labelled on all three criteria, with
  notes) among 184 traces of four weeks; the second session (62 SMS and voice replies labelled on `plain_text`,
  `sms_review.py`); the third (240 more, the evidence the held-out test split needs before a judge is promoted,
  numbered after the production traffic); golden-set members carry a `golden` key (`releases.py`).
- `demo_production.jsonl`: ten days of unlabelled production traffic for monitoring (`traffic.py`).
- `demo_candidates_1.4.0.jsonl`, `demo_candidates_1.5.0.jsonl`: two releases' outputs for the golden inputs.

Everything comes from seeded `random.Random`s (one per part, so a new part never changes the bytes of an older
one): the same seed gives the same bytes (a test checks it) and a diff of the files shows real changes only.

The bank, its fees and its customers are invented (`bank.py`). Each scenario template (`single.py`, `chat.py`,
`rag.py`, `agent.py`, `special.py`) knows the bank's published facts and which failure it injected, and
`formatting.py` knows what markup it added, so the expert's labels and critiques are specific and true to the trace
they are attached to. No Django import: this is plain data generation; `load_demo` reads the files it writes.
"""

from __future__ import annotations

import argparse
import json
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from demo import releases, sms_review, traffic
from demo.agent import AGENT_TEMPLATES, TASKS
from demo.bank import CHANNELS, MODELS, PROMPTS
from demo.chat import CHAT_TEMPLATES
from demo.core import GROUNDED, PLAIN, RESOLVES, Ctx, Draft
from demo.formatting import plain_pass
from demo.rag import RAG_TEMPLATES
from demo.single import SINGLE_TEMPLATES
from demo.special import long_agent_reconcile, long_chat_mobile_deposits, xss_phishing_paste, xss_single

SEED = 20261101
DATA_DIR = Path(__file__).parent
TRACES_FILE = "demo_traces.jsonl"
PRODUCTION_FILE = "demo_production.jsonl"
DEFAULT_OUT = DATA_DIR / TRACES_FILE


def candidates_file(release: str) -> str:
    return f"demo_candidates_{release}.jsonl"


# The review window: production traces from four weeks before the expert sat down to review them.
START = datetime(2026, 10, 26, 7, 0, tzinfo=UTC)
WINDOW_DAYS = 28

PROJECT_NAME = "Harbor Assist (Harbor Bank support)"
PROJECT_DESCRIPTION = (
    "Demo project: traces of Harbor Assist, the support assistant of the fictional Harbor Bank. Single-turn answers, "
    "chats, RAG answers and agent trajectories reviewed by the expert, ten days of production traffic watched by "
    "the promoted judge, and two releases checked against the golden set."
)
# The three criteria the expert labels in the demo, with the definitions a judge would be given.
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
    (
        PLAIN,
        "Pass when a reply sent over SMS or voice is plain text. Fail when it contains markdown that shows up as raw "
        "symbols on a phone or is read out by the voice assistant: bold or italics (asterisks, underscores), "
        "headings (#), tables (pipes), code (backticks) or quote blocks (>). Line breaks and plain hyphen lines read "
        "fine and pass. Replies on the web and in the app may use formatting.",
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


def _first_session(seed: int) -> list[tuple[dict[str, Any], Draft]]:
    """The four weeks of traces of the first review, in a stable order; labels and notes on about 60 of them."""
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
    return items


def _attach_reviews(rng: random.Random, items: list[tuple[dict[str, Any], Draft]]) -> None:
    """The expert's first session: labels with critiques on the three criteria and a note, on ~60 traces."""
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
        plain = draft.plain or plain_pass(record["metadata"]["channel"], record["id"])
        for criterion, (verdict, critique) in ((GROUNDED, draft.grounded), (RESOLVES, draft.resolves), (PLAIN, plain)):
            labels.append({"criterion": criterion, "verdict": verdict, "critique": critique})
        record["labels"] = labels
        # Most notes stay free text (open coding); some are already coded, at least one per failure mode seen.
        new_mode = any(mode not in coded for mode in draft.modes)
        if draft.modes and (new_mode or rng.random() < 0.3):
            record["notes"] = [{"text": draft.note, "failure_modes": draft.modes}]
            coded.update(draft.modes)
        else:
            record["notes"] = [draft.note]


@dataclass
class DemoData:
    traces: list[dict[str, Any]]
    production: list[dict[str, Any]]
    candidates: dict[str, list[dict[str, Any]]]

    def files(self) -> dict[str, list[dict[str, Any]]]:
        """File name → its records, every file the demo commits."""
        return {
            TRACES_FILE: self.traces,
            PRODUCTION_FILE: self.production,
            **{candidates_file(release): lines for release, lines in self.candidates.items()},
        }


def build(seed: int = SEED) -> DemoData:
    first = _first_session(seed)
    second = sms_review.build(seed, first_number=len(first) + 1)
    golden = releases.pick_golden(seed, first, second)
    traces = [record for record, _ in first] + [reply.record for reply in second]
    production = traffic.build(seed, first_number=len(traces) + 1)
    # Numbered after the traffic, which it came after: the production file keeps its ids, and so monitoring's sample.
    third = sms_review.build_evidence(seed, first_number=len(traces) + len(production) + 1)
    traces += [reply.record for reply in third]
    candidates = {release: releases.candidates(seed, golden, release) for release in releases.RELEASES}
    return DemoData(traces=traces, production=production, candidates=candidates)


def write_jsonl(traces: list[dict[str, Any]], path: Path) -> None:
    # One compact object per line, UTF-8 kept readable; "\n" line endings on every platform so the bytes are stable.
    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for trace in traces:
            handle.write(json.dumps(trace, ensure_ascii=False) + "\n")


def generate(directory: Path = DATA_DIR, *, seed: int = SEED) -> dict[str, int]:
    """Writes every demo file into `directory`; returns file name → number of lines."""
    counts = {}
    for name, records in build(seed).files().items():
        write_jsonl(records, directory / name)
        counts[name] = len(records)
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out-dir", type=Path, default=DATA_DIR, help="where to write the files")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args(argv)
    for name, count in generate(args.out_dir, seed=args.seed).items():
        print(f"wrote {count} lines to {args.out_dir / name}")


if __name__ == "__main__":
    main()
